#!/usr/bin/env python3
"""Draws the MQTT Workbench icon (a broker hub with three devices) at every
size the installers need. Run from the repo root: python3 assets/make-icons.py
(needs Pillow). Also writes wix/mqtt-workbench.ico and macos/AppIcon.icns. The PNGs are committed; this script is how they were made."""
from PIL import Image, ImageDraw

SIZES = [16, 24, 32, 48, 64, 128, 256, 512]

def draw(size: int) -> Image.Image:
    s = 4 * size  # draw large, downsample for smooth edges
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    r = int(s * 0.22)
    # background: vertical gradient, rounded square
    top, bottom = (38, 166, 154), (21, 101, 192)
    grad = Image.new("RGBA", (s, s))
    gd = ImageDraw.Draw(grad)
    for y in range(s):
        t = y / (s - 1)
        gd.line([(0, y), (s, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)) + (255,))
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).rounded_rectangle([s * 0.04, s * 0.04, s * 0.96, s * 0.96], radius=r, fill=255)
    img.paste(grad, (0, 0), mask)
    hub = (s * 0.5, s * 0.56)
    nodes = [(s * 0.24, s * 0.28), (s * 0.76, s * 0.28), (s * 0.5, s * 0.86)]
    w = max(2, int(s * 0.045))
    for n in nodes:
        d.line([hub, n], fill=(255, 255, 255, 235), width=w)
    for n in nodes:
        rr = s * 0.085
        d.ellipse([n[0] - rr, n[1] - rr, n[0] + rr, n[1] + rr], fill=(255, 255, 255, 255))
    rr = s * 0.15
    d.ellipse([hub[0] - rr, hub[1] - rr, hub[0] + rr, hub[1] + rr], fill=(255, 193, 7, 255), outline=(255, 255, 255, 255), width=w)
    return img.resize((size, size), Image.LANCZOS)

if __name__ == "__main__":
    import os
    for n in SIZES:
        out = f"assets/icons/hicolor/{n}x{n}/apps"
        os.makedirs(out, exist_ok=True)
        draw(n).save(f"{out}/mqtt-workbench.png")
    draw(256).save("assets/icon-256.png")
    draw(1024).save("assets/icon-1024.png")
    # Windows installer icon and macOS bundle icon
    draw(256).save("wix/mqtt-workbench.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    draw(1024).save("macos/AppIcon.icns")
