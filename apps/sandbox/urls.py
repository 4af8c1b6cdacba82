from django.urls import URLPattern, re_path

from apps.sandbox import views

CATEGORIES = ("general", "actions", "customers", "integrations", "model", "groups", "segments")


def _any_case(word: str) -> str:
    # Character classes, not the (?i) flag: Django's URL reversing cannot parse inline flags.
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


# Optimove's categories only, so the sandbox mounted at the root never shadows the platform's own URLs.
# Both `/current/{category}/{Function}` and the newer `/{Category}/{Function}`, in any letter case;
# the view matches the function name case-insensitively.
urlpatterns: list[URLPattern] = [
    re_path(
        rf"^(?:{_any_case('current')}/)?(?P<category>{'|'.join(_any_case(c) for c in CATEGORIES)})"
        r"/(?P<function>[A-Za-z0-9_]+)/?$",
        views.optimove_function,
        name="sandbox-optimove-function",
    ),
]
