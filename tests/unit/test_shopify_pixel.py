"""The Shopify custom pixel's generator: what it fills in, and the flags it refuses
(the code itself runs in Chromium: tests/browser/test_shopify_pixel.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from pixelrelay.cli import main
from pixelrelay.config import Secret, Settings, SourceSettings
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.sources.shopify_pixel import PixelError, custom_pixel

WEB = SourceSettings(name="web", kind="browser", key=Secret("site-key-web-1"),
                     allowed_origins=("https://shop.example",))
API = SourceSettings(name="api", kind="server", key=Secret("server-key-1"))
SHOP = SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret("s"),
                      content_id="variant_id")
TIKTOK = tiktok_destination(name="tt", pixel_code="C9ABC1234567890",
                             access_token=Secret("token"),
                             event_map={"Purchase": "Purchase", "Search": "SearchDone"})


def config_of(code: str) -> dict[str, Any]:
    found = re.search(r"var CONFIG = (\{.*\});", code)
    assert found is not None
    doc: dict[str, Any] = orjson.loads(found.group(1))
    return doc


def test_the_pixel_carries_the_gateway_the_key_and_the_servers_names() -> None:
    settings = Settings(sources=(API, WEB, SHOP), destinations=(TIKTOK,))
    code = custom_pixel(settings, "web", " https://events.shop.example/ ")
    config = config_of(code)
    assert config["endpoint"] == "https://events.shop.example"
    assert config["key"] == "site-key-web-1"
    # The webhook's choice of content_id, so both copies of an order list the same products.
    assert config["contentId"] == "variant_id"
    # Names as the server sends them under the first destination's event_map.
    assert config["names"]["Purchase"] == "Purchase"
    assert config["names"]["Search"] == "SearchDone"
    assert config["names"]["PageView"] == "Pageview"
    assert config["pixels"] == {"tiktok": "C9ABC1234567890"}
    assert config["bridges"]["tiktok"]["map"] == {"Purchase": "Purchase", "Search": "SearchDone"}
    assert "bridge('tiktok'" in code and "bridge('meta'" not in code
    assert "/*__PIXELRELAY_BRIDGES__*/" not in code
    # Every registered type's cookies: the pasted code outlives the config.
    assert config["cookies"] == [["_ttp", "ttp"], ["_fbp", "fbp"], ["_fbc", "fbc"]]
    assert (config["sessionDays"], config["clickDays"]) == (1, 30)
    assert config["clicks"] == [["ttclid", "ttclid"]]  # [URL parameter, user key]
    assert "/*__PIXELRELAY_CONFIG__*/" not in code
    assert "Settings > Customer events > Add custom pixel" in code
    assert "Permission \"Not required\"" in code


def test_the_pixels_are_optional_and_the_content_id_follows_the_source() -> None:
    no_dest = Settings(sources=(WEB,))
    code = custom_pixel(no_dest, "web", "https://events.shop.example")
    config = config_of(code)
    assert config["pixels"] == {} and config["contentId"] == "sku"
    assert "bridge('" not in code
    # No destination: names as they come, as the server derives event_ids then.
    assert config["names"]["Purchase"] == "Purchase"
    with_dest = Settings(sources=(WEB,), destinations=(TIKTOK,))
    off = custom_pixel(with_dest, "web", "https://e.example", pixels=False)
    assert config_of(off)["pixels"] == {} and "bridge('" not in off
    with pytest.raises(PixelError, match="--tiktok-pixel"):
        custom_pixel(no_dest, "web", "https://e.example", pixels=True)


def test_a_meta_destination_adds_its_pixel_and_the_first_destination_names_the_ids() -> None:
    meta = meta_destination(name="fb", pixel_id="123456789012345", access_token=Secret("m"),
                            event_map={"Search": "FindIt"})
    code = custom_pixel(Settings(sources=(WEB,), destinations=(meta, TIKTOK)), "web",
                      "https://e.example")
    config = config_of(code)
    assert config["pixels"] == {"meta": "123456789012345", "tiktok": "C9ABC1234567890"}
    assert code.index("bridge('meta'") < code.index("bridge('tiktok'")
    assert config["bridges"]["meta"]["keys"]["search"] == "FindIt"
    assert "Purchase" in config["bridges"]["meta"]["standard"]
    # The event_ids follow the first destination's names (Meta's here), as the server's.
    assert config["names"]["Purchase"] == "Purchase" and config["names"]["Search"] == "FindIt"


@pytest.mark.parametrize(("source", "url", "message"), [
    ("nope", "https://e.example", "--source nope: no such source (browser sources: web)"),
    ("api", "https://e.example", "--source api: is a server source"),
    ("web", "events.shop.example", "--url 'events.shop.example': must be the gateway's"),
    ("web", "ftp://e.example", "must be the gateway's public URL"),
    ("web", "https://e.example/?k=1", "must have no query or fragment"),
])
def test_bad_flags_are_named(source: str, url: str, message: str) -> None:
    with pytest.raises(PixelError) as err:
        custom_pixel(Settings(sources=(API, WEB)), source, url)
    assert message in str(err.value)


def test_the_command_prints_the_code_or_names_the_bad_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text("""
[[sources]]
name = "web"
kind = "browser"
key = "site-key-web-1"
allowed_origins = ["https://shop.example"]

[[destinations]]
name = "tt"
pixel_code = "C9ABC1234567890"
access_token = "token"
""")
    assert main(["shopify-pixel", "--config", str(toml), "--source", "web",
                 "--url", "https://events.shop.example", "--no-tiktok-pixel"]) == 0
    out = capsys.readouterr().out
    assert config_of(out)["key"] == "site-key-web-1" and config_of(out)["pixels"] == {}
    assert main(["shopify-pixel", "--config", str(toml), "--source", "shop",
                 "--url", "https://events.shop.example"]) == 2
    assert "--source shop: no such source" in capsys.readouterr().err
