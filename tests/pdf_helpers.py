"""Small PDFs for the document tests, written by pyHanko at test time (no committed binaries)."""

from __future__ import annotations

import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter


def minimal_pdf(text: str = "JPKI test document", *, text_field: str | None = None) -> bytes:
    """A one-page PDF with a line of text (Helvetica), optionally an empty text form field."""
    w = PdfFileWriter()
    font = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Font"),
            generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
            generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {
            generic.NameObject("/Font"): generic.DictionaryObject(
                {generic.NameObject("/F1"): w.add_object(font)}
            )
        }
    )
    body = f"BT /F1 12 Tf 72 760 Td ({text}) Tj ET".encode("latin-1")
    stream = generic.StreamObject(stream_data=body)
    page = PageObject(
        contents=w.add_object(stream),
        media_box=generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        resources=resources,
    )
    page_ref = w.insert_page(page)
    if text_field is not None:
        n = generic.NameObject
        tx = generic.DictionaryObject(
            {
                n("/FT"): n("/Tx"),
                n("/T"): generic.TextStringObject(text_field),
                n("/V"): generic.TextStringObject(""),
                n("/Type"): n("/Annot"),
                n("/Subtype"): n("/Widget"),
                n("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(x) for x in (72, 600, 272, 620)]
                ),
                n("/P"): page_ref,
            }
        )
        tx_ref = w.add_object(tx)
        page[n("/Annots")] = generic.ArrayObject([tx_ref])
        w.root[n("/AcroForm")] = generic.DictionaryObject(
            {n("/Fields"): generic.ArrayObject([tx_ref])}
        )
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def fill_text_field(pdf: bytes, value: str) -> bytes:
    """An unsigned incremental update that fills the first text field (form filling)."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    for ref in w.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/FT") == "/Tx":
            field[generic.NameObject("/V")] = generic.TextStringObject(value)
            w.update_container(field)
            break
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def append_page_text(pdf: bytes, text: str = "added after signing") -> bytes:
    """An unsigned incremental update that replaces the first page's content."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = w.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    body = f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode("latin-1")
    page[generic.NameObject("/Contents")] = w.add_object(generic.StreamObject(stream_data=body))
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()
