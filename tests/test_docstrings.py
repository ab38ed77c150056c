"""Docstrings in Google, NumPy and Sphinx style give a tool its description and parameter texts."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from tamma_tools._docstrings import parse_docstring

GOOGLE = """Get the weather forecast for a city.

    Uses the national service when the city has one.

    Args:
        city (str): The city's name, as people
            write it.
        days: How many days ahead, 1 to 14.

    Returns:
        The forecast, one entry per day.

    Raises:
        ValueError: When the city is unknown.
    """

NUMPY = """Get the weather forecast for a city.

    Uses the national service when the city has one.

    Parameters
    ----------
    city : str
        The city's name, as people
        write it.
    days : int, optional
        How many days ahead, 1 to 14.

    Returns
    -------
    list
        The forecast, one entry per day.
    """

SPHINX = """Get the weather forecast for a city.

    Uses the national service when the city has one.

    :param city: The city's name, as people
        write it.
    :param int days: How many days ahead, 1 to 14.
    :returns: The forecast, one entry per day.
    :raises ValueError: When the city is unknown.
    """

EXPECTED_PARAMS = {
    "city": "The city's name, as people write it.",
    "days": "How many days ahead, 1 to 14.",
}
EXPECTED_DESCRIPTION = (
    "Get the weather forecast for a city.\n\nUses the national service when the city has one."
)


def test_google_style() -> None:
    parsed = parse_docstring(GOOGLE)
    assert parsed.style == "google"
    assert parsed.description == EXPECTED_DESCRIPTION
    assert parsed.params == EXPECTED_PARAMS


def test_numpy_style() -> None:
    parsed = parse_docstring(NUMPY)
    assert parsed.style == "numpy"
    assert parsed.description == EXPECTED_DESCRIPTION
    assert parsed.params == EXPECTED_PARAMS


def test_sphinx_style() -> None:
    parsed = parse_docstring(SPHINX)
    assert parsed.style == "sphinx"
    assert parsed.description == EXPECTED_DESCRIPTION
    assert parsed.params == EXPECTED_PARAMS


def test_returns_and_raises_stay_out_of_the_description() -> None:
    for doc in (GOOGLE, NUMPY, SPHINX):
        description = parse_docstring(doc).description or ""
        assert "forecast, one entry per day" not in description
        assert "unknown" not in description


def test_plain_docstring_is_all_description() -> None:
    parsed = parse_docstring("Ping the server.\n\n    Answers pong when it is up.\n    ")
    assert parsed.style == "plain"
    assert parsed.description == "Ping the server.\n\nAnswers pong when it is up."
    assert parsed.params == {}


def test_missing_or_blank_docstring() -> None:
    assert parse_docstring(None).description is None
    assert parse_docstring("   \n  ").description is None


def test_star_args_entries_are_not_parameters() -> None:
    doc = "Do it.\n\nArgs:\n    x: The x.\n    *rest: Ignored.\n    **extra: Ignored too.\n"
    assert parse_docstring(doc).params == {"x": "The x."}


def test_broken_section_keeps_the_summary() -> None:
    # A section header with malformed entries must not lose the summary or raise.
    parsed = parse_docstring("Summary line.\n\nArgs:\n    : nothing here\n")
    assert parsed.description is not None and parsed.description.startswith("Summary line.")


_names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda s: s[0] != "_" and s not in {"returns", "raises", "yields", "args", "parameters"}
)
_words = st.lists(
    st.text(alphabet=string.ascii_letters + string.digits + ",'", min_size=1, max_size=10),
    min_size=1,
    max_size=8,
).map(lambda ws: " ".join(ws) + ".")


def _render(style: str, summary: str, params: dict[str, str]) -> str:
    if style == "google":
        body = "\n".join(f"    {n}: {d}" for n, d in params.items())
        return f"{summary}\n\nArgs:\n{body}\n"
    if style == "numpy":
        body = "\n".join(f"{n} : str\n    {d}" for n, d in params.items())
        return f"{summary}\n\nParameters\n----------\n{body}\n"
    body = "\n".join(f":param {n}: {d}" for n, d in params.items())
    return f"{summary}\n\n{body}\n"


@given(
    style=st.sampled_from(["google", "numpy", "sphinx"]),
    summary=_words,
    params=st.dictionaries(_names, _words, min_size=1, max_size=5),
)
def test_any_well_formed_docstring_gives_back_its_texts(
    style: str, summary: str, params: dict[str, str]
) -> None:
    parsed = parse_docstring(_render(style, summary, params))
    assert parsed.style == style
    assert parsed.description == summary
    assert parsed.params == params


@given(st.text(max_size=300))
def test_never_raises_on_any_text(doc: str) -> None:
    parsed = parse_docstring(doc)
    assert all(isinstance(v, str) and v for v in parsed.params.values())


def test_lists_keep_their_lines_while_wrapped_prose_is_joined() -> None:
    doc = """Search the catalogue.

    Modes, as the
    service names them:
    - exact: whole words only,
      case-sensitive.
    - fuzzy: typos allowed.
    1. first
    """
    assert parse_docstring(doc).description == (
        "Search the catalogue.\n\n"
        "Modes, as the service names them:\n"
        "- exact: whole words only, case-sensitive.\n"
        "- fuzzy: typos allowed.\n"
        "1. first"
    )
