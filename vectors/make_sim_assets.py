#!/usr/bin/env python3
"""Regenerate the simulator's card-surface images in src/jpki/sim/assets/.

    python vectors/make_sim_assets.py

Needs Pillow (with OpenJPEG, as in the PyPI wheels); the jpki package itself does not. The
images are clearly fictional placeholders shared by every simulated card: a name and an address
image (PNG), a face photo (JPEG 2000, .jp2), a security-code image and a My Number image (PNG).
Only Pillow's built-in bitmap font and plain shapes are used, so the output does not depend on
system fonts (PNG/JPEG 2000 encoder versions may still change bytes).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "src" / "jpki" / "sim" / "assets"


def text_image(lines: list[str], size: tuple[int, int]) -> Image.Image:
    """Black text on white, 1-bit: like the scanned text images on a real card."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default_imagefont()
    y = 4
    for line in lines:
        draw.text((4, y), line, fill=0, font=font)
        y += 14
    return img.convert("1")


def face() -> Image.Image:
    """A cartoon face: background, shoulders, head, eyes, mouth."""
    img = Image.new("RGB", (90, 112), (200, 215, 235))
    d = ImageDraw.Draw(img)
    d.ellipse((5, 80, 85, 150), fill=(40, 50, 90))  # shoulders
    d.ellipse((22, 18, 68, 76), fill=(236, 200, 170))  # head
    d.chord((20, 12, 70, 50), 180, 360, fill=(30, 25, 20))  # hair
    d.ellipse((33, 40, 39, 46), fill=(20, 20, 20))
    d.ellipse((51, 40, 57, 46), fill=(20, 20, 20))
    d.arc((35, 50, 55, 66), 20, 160, fill=(150, 60, 60), width=2)
    d.text((3, 100), "TEST", fill=(255, 0, 0), font=ImageFont.load_default_imagefont())
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    save_png = {"format": "PNG", "optimize": True}
    text_image(["SHIKEN TARO (TEST CARD)"], (200, 22)).save(OUT / "name.png", **save_png)
    text_image(["TOKYO-TO CHIYODA-KU", "SHIKEN-CHO 1-2-3 (TEST)"], (200, 36)).save(
        OUT / "address.png", **save_png
    )
    text_image(["SECURITY CODE: TEST"], (140, 22)).save(OUT / "security_code.png", **save_png)
    text_image(["MY NUMBER: 0000 0000 0000 (TEST)"], (220, 22)).save(
        OUT / "my_number.png", **save_png
    )
    face().save(
        OUT / "face.jp2",
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[24],
        irreversible=True,
        no_jp2=False,
    )
    for p in sorted(OUT.iterdir()):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
