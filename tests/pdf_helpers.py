"""Small PDFs for the document tests, written by pyHanko at test time (no committed binaries)."""

from __future__ import annotations

import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter


def minimal_pdf(text: str = "JPKI test document") -> bytes:
    """A one-page PDF with a line of text (Helvetica)."""
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
    w.insert_page(page)
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
