"""The path policy's stable rule names and the messages a model reads when a path is refused.

Audit records, metrics, tests and callers match on the rule names; the messages say what is
wrong and what is allowed, so a model can correct its call.
"""

from __future__ import annotations

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "MSG_BLOCKED",
    "MSG_CONTROL",
    "MSG_DISABLED",
    "MSG_EMPTY",
    "MSG_ENCODING",
    "MSG_HARDLINK",
    "MSG_MAGIC_LINK",
    "MSG_NOT_DIRECTORY",
    "MSG_NOT_FOUND",
    "MSG_NOT_REGULAR",
    "MSG_NO_ROOTS",
    "MSG_NUL",
    "MSG_OS_REFUSED",
    "MSG_OUTSIDE",
    "MSG_SYMLINK_ESCAPE",
    "MSG_SYMLINK_LOOP",
    "MSG_TOO_LARGE",
    "MSG_TOO_LONG",
    "MSG_TRAILING_SLASH",
    "MSG_TRAVERSAL",
    "RULE_BLOCKED",
    "RULE_CONTROL",
    "RULE_DISABLED",
    "RULE_EMPTY",
    "RULE_ENCODING",
    "RULE_HARDLINK",
    "RULE_MAGIC_LINK",
    "RULE_NOT_DIRECTORY",
    "RULE_NOT_FOUND",
    "RULE_NOT_REGULAR",
    "RULE_NO_ROOTS",
    "RULE_NUL",
    "RULE_OS_REFUSED",
    "RULE_OUTSIDE",
    "RULE_SYMLINK_ESCAPE",
    "RULE_SYMLINK_LOOP",
    "RULE_TOO_LONG",
    "RULE_TRAVERSAL",
]

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

# Stable rule names: audit records, tests and callers match on these.
RULE_DISABLED = "path.disabled"
RULE_NO_ROOTS = "path.no_roots"
RULE_EMPTY = "path.empty"
RULE_NUL = "path.nul_byte"
RULE_CONTROL = "path.control_character"
RULE_ENCODING = "path.encoding"
RULE_TOO_LONG = "path.too_long"
RULE_OUTSIDE = "path.outside_roots"
RULE_TRAVERSAL = "path.traversal"
RULE_SYMLINK_ESCAPE = "path.symlink_escape"
RULE_SYMLINK_LOOP = "path.symlink_loop"
RULE_MAGIC_LINK = "path.magic_link"
RULE_BLOCKED = "path.blocked"
RULE_NOT_REGULAR = "path.not_regular"
RULE_NOT_DIRECTORY = "path.not_directory"
RULE_NOT_FOUND = "path.not_found"
RULE_HARDLINK = "path.hardlink"
RULE_OS_REFUSED = "path.os_refused"

MSG_DISABLED = "file access is disabled in this sandbox; no path can be used"
MSG_NO_ROOTS = (
    "no directory is allowed for file access (SandboxConfig.allowed_paths is empty); "
    "no path can be used"
)
MSG_EMPTY = "path is empty; give a file or directory path inside the allowed roots: {roots}"
MSG_NUL = "path {path!r} contains a NUL byte; remove it"
MSG_CONTROL = "path {path!r} contains a control character; remove it"
MSG_ENCODING = "path {path!r} is not valid UTF-8 text (lone surrogate); use plain characters"
MSG_TOO_LONG = (
    f"path is too long: at most {MAX_PATH_BYTES} bytes in total and {MAX_NAME_BYTES} bytes per "
    "name; shorten it"
)
MSG_OUTSIDE = "path {path!r} is outside the allowed roots; allowed roots are: {roots}"
MSG_TRAVERSAL = (
    "path {path!r} climbs above its root with '..'; use a path inside the allowed roots: {roots}"
)
MSG_SYMLINK_ESCAPE = (
    "path {path!r} goes through a symbolic link that points outside the allowed roots (or to a "
    "missing target); use the real file inside the allowed roots: {roots}"
)
MSG_SYMLINK_LOOP = "path {path!r} has too many or looping symbolic links"
MSG_MAGIC_LINK = "path {path!r} goes through a /proc magic link; such links are never followed"
MSG_BLOCKED = "path {path!r} is blocked by the sandbox's block list (pattern {pattern!r})"
MSG_NOT_REGULAR = "path {path!r} is a {kind}, not a regular file; only regular files can be {verb}"
MSG_NOT_DIRECTORY = "path {path!r} is not a directory; give a directory to list"
MSG_TRAILING_SLASH = (
    "path {path!r} ends with '/', which names a directory; remove the trailing '/' for a file"
)
MSG_NOT_FOUND = "path {path!r} does not exist{detail}; list the directory to see what is there"
MSG_HARDLINK = (
    "path {path!r} has several hard links; overwriting it could change a file elsewhere, so it "
    "is refused"
)
MSG_OS_REFUSED = "path {path!r} cannot be opened: {reason}"
MSG_TOO_LARGE = "content is {size} bytes; the limit is {limit} bytes; write less"
