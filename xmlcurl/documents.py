"""The envelope FreeSWITCH parses: ``<document type="freeswitch/xml"><section name=...>``, built with lxml."""

from __future__ import annotations

from lxml import etree

Element = etree._Element

DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'


def document(section: str, description: str = "fsfarm") -> tuple[Element, Element]:
    """A new document and its one section element, to be filled by the caller."""
    root = etree.Element("document", type="freeswitch/xml")
    sec = etree.SubElement(root, "section", name=section, description=description)
    return root, sec


def not_found() -> Element:
    """The answer that makes FreeSWITCH say "not found" (and fall back to its local files)."""
    root = etree.Element("document", type="freeswitch/xml")
    sec = etree.SubElement(root, "section", name="result")
    etree.SubElement(sec, "result", status="not found")
    return root


def render(root: Element) -> bytes:
    """Serialise with the XML declaration FreeSWITCH expects; lxml escapes every attribute value."""
    return DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False) + b"\n"


def params(parent: Element, tag: str, values: list[tuple[str, str]], item: str = "param") -> Element:
    """``<tag><item name=.. value=../>...</tag>``: the shape of every params/variables/settings list."""
    holder = etree.SubElement(parent, tag)
    for name, value in values:
        etree.SubElement(holder, item, name=name, value=str(value))
    return holder


NOT_FOUND = render(not_found())
