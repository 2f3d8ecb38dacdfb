"""fbc built from an fbclid, Meta's way (meta-capi.md §2)."""

from __future__ import annotations

import pytest

from pixelrelay.destinations.meta.clickids import current_fbc, fbc_from_fbclid, fbclid_of

CLICK = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
FBC = f"fb.1.1554763741205.{CLICK}"


def test_built_like_metas_example_case_kept() -> None:
    assert fbc_from_fbclid(CLICK, 1554763741205) == FBC
    assert fbc_from_fbclid("AbC", 1, subdomain_index=2) == "fb.2.1.AbC"
    with pytest.raises(ValueError, match="fbclid"):
        fbc_from_fbclid("", 1)


def test_fbclid_of() -> None:
    assert fbclid_of(FBC) == CLICK
    assert fbclid_of(FBC + ".AQIAAQMC") == CLICK  # Parameter Builder appendix
    assert fbclid_of("fb.1.abc.x") is None
    assert fbclid_of("fb.1.123") is None


def test_a_new_click_replaces_the_cookie_the_same_click_keeps_it() -> None:
    assert current_fbc(FBC, CLICK, 9) == FBC
    assert current_fbc(FBC, "NewClick", 1700000000000) == "fb.1.1700000000000.NewClick"
    assert current_fbc(None, CLICK, 5) == f"fb.1.5.{CLICK}"
    assert current_fbc(FBC, None, 5) == FBC
    assert current_fbc(None, None, 5) is None
