"""Make a small synthetic dataset in the Cityscapes layout.

The scenes are built so that the input scale matters, as it does on
Cityscapes:

- Large regions need context seen at low resolution. Vegetation and terrain
  share one green texture (trees stand above the horizon, grass lies below
  it), and road and sidewalk share one asphalt texture (the sidewalk is the
  band between the road and the verge): a small window cannot tell them
  apart, the surroundings can.
- Thin and small things need high resolution: poles one to three pixels
  wide, traffic signs and traffic lights of a few pixels on top of them,
  and distant persons and cars that shrink towards the horizon.

Two families of scenes share this recipe and differ in their statistics
(:class:`SceneFamily` holds every number; ``make_demo_dataset(...,
family=...)`` and ``tools/make_demo_data.py --family`` choose one):

- ``street`` (the default, the demo's data): a camera at about eye level,
  the horizon at 38-50% of the image height, a road 60-90% of the image
  wide at the bottom row; persons 5-23 and cars 8-48 pixels (tall and wide
  respectively, at 256 pixels wide) growing linearly from the horizon; 1-3
  pixel poles; a bonnet (ignored) in half the images. Pixels per class
  (64 + 16 images, seed 0): sky 26%, terrain 22%, road 17%, building 13%,
  sidewalk 10%, vegetation 5%, car 3.4%, pole 1.1%, person 0.7%.
- ``street2``: a camera mounted higher and tilted down: the horizon at
  22-32% of the height, a road 110-160% of the image wide at the bottom
  row (stronger perspective), the vanishing point anywhere in the middle
  40%; a denser skyline of narrower buildings; fewer, larger trees.
  Objects grow with the square of their depth below the horizon, so sizes
  span a wider range: persons 4-49 pixels tall (4-13 per image), cars 4-94
  pixels wide (2-8 per image), and 0-2 trucks (Cityscapes' ``truck``,
  absent from ``street``) 25-112 pixels wide in the nearer 70% of the
  ground, with a facade's texture, so that only their surroundings tell
  them from a building; poles 2-5 pixels wide (1-3 per image) with larger
  signs and lights; no bonnet.
  Pixels per class (64 + 16 images, seed 0): road 32%, terrain 20%,
  building 13%, sky 11%, car 8.6%, truck 6.7%, sidewalk 4%, vegetation 3%,
  person 0.9%, pole 0.6%.

Both use the same textures (asphalt shared by road and sidewalk, one green
for vegetation and terrain) and the same image size and seed handling; the
default family's files are exactly those made before families existed.

Files follow Cityscapes' names, so MMSeg's ``CityscapesDataset`` reads them
unchanged::

    OUT/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    OUT/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

Labels are Cityscapes train ids (0-18) with 255 for ignored pixels (the ego
vehicle's bonnet in some ``street`` images). The same seed and family give
the same files.

``tools/make_demo_data.py`` writes it from the command line.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np

#: Cityscapes' 19 training classes, indexed by train id.
CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
           'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
           'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
ROAD, SIDEWALK, BUILDING = 0, 1, 2
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 5, 6, 7
VEGETATION, TERRAIN, SKY = 8, 9, 10
PERSON, CAR, TRUCK = 11, 13, 14
IGNORE = 255

TRAIN_CITIES = ('demotown', 'hmsaville')
VAL_CITIES = ('valburg', )

_FACADES = ((150, 150, 155), (175, 160, 135), (150, 85, 70), (120, 120, 130),
            (190, 185, 170))
_SIGN_COLOURS = ((210, 35, 35), (35, 70, 205), (235, 200, 40))
_LAMP_COLOURS = ((255, 45, 40), (60, 240, 90), (255, 190, 40))
_CAR_COLOURS = ((200, 30, 30), (30, 60, 170), (230, 230, 230), (40, 40, 45),
                (200, 170, 40), (60, 140, 70), (150, 150, 160))


Range = Tuple[float, float]


@dataclass(frozen=True)
class SceneFamily:
    """The statistics of one family of scenes: camera, layout and objects.

    Fractions are of the image height ``h`` or width ``w``; a ``(lo, hi)``
    pair is a uniform draw per image or object, a count pair the half-open
    range of :meth:`numpy.random.Generator.integers`. ``d`` is an object's
    depth below the horizon (0 at the horizon, 1 at the bottom row); a size
    ``(a, b, p)`` is ``a + b * d**p`` pixels at 256 pixels wide.

    Attributes:
        name (str): The family's name (``make_demo_dataset(family=...)``).
        horizon (Range): The horizon's row, a fraction of ``h``.
        vanish_x (Range): The road's vanishing point, a fraction of ``w``.
        road_half (Range): Half the road's width at the bottom row, a
            fraction of ``w`` (perspective: it grows linearly with ``d``).
        walk (Range): The sidewalk's width at the bottom row, as above.
        building_p (float): Chance that a skyline slot holds a building.
        building_w (Range): A building's width in pixels.
        building_top (Range): A building's top row, a fraction of ``h``
            (before it is raised towards the vanishing point).
        trees (Range): How many trees.
        tree_rx (Range): A crown's horizontal radius in pixels.
        tree_ry (Range): A crown's vertical radius in pixels.
        poles (Range): How many poles.
        pole_widths (tuple[int]): Widths a pole is drawn from, in pixels.
        pole_height (tuple[float, float]): ``(a, b)``: a pole's height is
            ``(a + b * d) * h``.
        sign (tuple[float, float, float]): A traffic sign's side.
        lamp (tuple[float, float, float]): A traffic light's width.
        persons (Range): How many persons.
        person (tuple[float, float, float]): A person's height.
        cars (Range): How many cars.
        car (tuple[float, float, float]): A car's width.
        trucks (Range): How many trucks (``(0, 0)``: none, and no draw).
        truck (tuple[float, float, float]): A truck's width.
        bonnet_p (float): Chance of the ego vehicle's (ignored) bonnet.
    """

    name: str
    horizon: Range = (0.38, 0.5)
    vanish_x: Range = (0.4, 0.6)
    road_half: Range = (0.3, 0.45)
    walk: Range = (0.15, 0.28)
    building_p: float = 0.8
    building_w: Range = (18, 60)
    building_top: Range = (0.04, 0.3)
    trees: Range = (2, 6)
    tree_rx: Range = (8, 24)
    tree_ry: Range = (6, 16)
    poles: Range = (2, 6)
    pole_widths: Tuple[int, ...] = (1, 1, 2, 2, 3)
    pole_height: Tuple[float, float] = (0.25, 0.4)
    sign: Tuple[float, float, float] = (3, 4, 1)
    lamp: Tuple[float, float, float] = (2, 2, 1)
    persons: Range = (1, 7)
    person: Tuple[float, float, float] = (5, 18, 1)
    cars: Range = (1, 6)
    car: Tuple[float, float, float] = (8, 40, 1)
    trucks: Range = (0, 0)
    truck: Tuple[float, float, float] = (24, 120, 2)
    bonnet_p: float = 0.5


#: The scene families, by name. ``street`` is the default demo data (every
#: number of docs/study.md); ``street2`` differs in camera, layout, object
#: sizes and class frequencies (see the module docstring).
FAMILIES: Dict[str, SceneFamily] = {
    f.name: f
    for f in (
        SceneFamily('street'),
        SceneFamily(
            'street2',
            horizon=(0.22, 0.32),
            vanish_x=(0.3, 0.7),
            road_half=(0.55, 0.8),
            walk=(0.1, 0.2),
            building_p=0.95,
            building_w=(10, 32),
            building_top=(0.0, 0.12),
            trees=(0, 3),
            tree_rx=(14, 40),
            tree_ry=(8, 18),
            poles=(1, 4),
            pole_widths=(2, 3, 3, 4, 5),
            pole_height=(0.12, 0.6),
            sign=(2, 12, 1),
            lamp=(2, 5, 1),
            persons=(4, 14),
            person=(3, 46, 2),
            cars=(2, 9),
            car=(4, 90, 2),
            trucks=(0, 3),
            truck=(16, 96, 2),
            bonnet_p=0.0),
    )
}
DEFAULT_FAMILY = 'street'


def get_family(name: str) -> SceneFamily:
    """The :class:`SceneFamily` called ``name`` (a key of ``FAMILIES``)."""
    if name not in FAMILIES:
        raise ValueError(f'unknown data family {name!r}; known: '
                         f'{", ".join(FAMILIES)}')
    return FAMILIES[name]


def _size(spec: Tuple[float, float, float], d: float) -> float:
    a, b, p = spec
    return a + b * d**p if p != 1 else a + b * d


class _Canvas:
    """An RGB image and its label map, painted together."""

    def __init__(self, height: int, width: int) -> None:
        self.img = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), IGNORE, np.uint8)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.label.shape

    def paint(self, mask: np.ndarray, colour, label: int) -> None:
        """Paint ``colour`` (RGB triple or HxWx3 array) where ``mask``."""
        colour = np.asarray(colour, np.float32)
        self.img[mask] = colour[mask] if colour.ndim == 3 else colour
        self.label[mask] = label

    def rect(self, y1: float, y2: float, x1: float, x2: float, colour,
             label: int) -> None:
        """Paint the rectangle [y1, y2) x [x1, x2), clipped to the image."""
        h, w = self.shape
        y1, y2 = int(np.clip(round(y1), 0, h)), int(np.clip(round(y2), 0, h))
        x1, x2 = int(np.clip(round(x1), 0, w)), int(np.clip(round(x2), 0, w))
        if y2 > y1 and x2 > x1:
            self.img[y1:y2, x1:x2] = colour
            self.label[y1:y2, x1:x2] = label


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int],
                  cell: int) -> np.ndarray:
    """Zero-mean, unit-scale noise varying over about ``cell`` pixels."""
    h, w = shape
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2))
    return cv2.resize(
        coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, shape: Tuple[int, int], base,
             blotch: float, grain: float, cell: int) -> np.ndarray:
    """An HxWx3 texture: a base colour, smooth blotches and pixel grain."""
    low = _smooth_noise(rng, shape, cell)[..., None] * blotch
    high = rng.standard_normal(shape + (3, )).astype(np.float32) * grain
    return np.asarray(base, np.float32) + low + high


def _jitter(rng: np.random.Generator, colour, amount: float) -> np.ndarray:
    return np.clip(
        np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0,
        255)


def render_scene(rng: np.random.Generator,
                 height: int,
                 width: int,
                 family: str = DEFAULT_FAMILY
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one street scene.

    Args:
        rng (np.random.Generator): Source of randomness.
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        family (str): The scene family (a key of ``FAMILIES``). Defaults to
            ``'street'``.

    Returns:
        tuple: The RGB image (H, W, 3) uint8 and its label map (H, W) uint8
        of Cityscapes train ids (255: ignore).
    """
    fam = get_family(family)
    c = _Canvas(height, width)
    h, w = height, width
    f = w / 256.0  # object sizes are designed for 256 pixels wide
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = int(rng.uniform(*fam.horizon) * h)
    vx = rng.uniform(*fam.vanish_x) * w  # vanishing point of the road

    # One asphalt and one green texture per image: road and sidewalk, and
    # vegetation and terrain, are locally indistinguishable.
    asphalt = _texture(rng, (h, w), _jitter(rng, (82, 82, 86), 12), 6, 7,
                       max(2, int(6 * f)))
    green = _texture(rng, (h, w), _jitter(rng, (70, 125, 55), 15), 18, 12,
                     max(2, int(5 * f)))

    # Sky: a vertical gradient.
    t = (yy / max(horizon, 1))[..., None]
    top, bottom = _jitter(rng, (70, 125, 200), 20), _jitter(
        rng, (165, 195, 230), 15)
    c.paint(yy < horizon, top * (1 - t) + bottom * t, SKY)

    # Buildings: a skyline of blocks with window grids, with gaps of sky.
    x = 0.0
    while x < w:
        bw = rng.uniform(*fam.building_w) * f
        if rng.random() < fam.building_p:
            near_centre = 1 - abs((x + bw / 2) - vx) / w
            top_y = (rng.uniform(*fam.building_top) * h +
                     near_centre * 0.25 * horizon)
            top_y = min(top_y, horizon - 0.08 * h)
            facade = _jitter(rng, _FACADES[rng.integers(len(_FACADES))], 12)
            tex = _texture(rng, (h, w), facade, 5, 5, max(2, int(4 * f)))
            mask = (xx >= x) & (xx < x + bw) & (yy >= top_y) & (yy < horizon)
            c.paint(mask, tex, BUILDING)
            step = max(4, int(rng.uniform(6, 10) * f))
            win = (((xx - x) % step) < step * 0.45) & (
                ((yy - top_y) % step) < step * 0.5) & mask
            c.img[win] *= rng.uniform(0.45, 0.65)
        x += bw

    # Ground: road in the middle, sidewalks beside it, terrain outside.
    depth = np.clip((yy - horizon) / max(h - horizon, 1), 0, 1)
    ground = yy >= horizon
    road_half = depth * rng.uniform(*fam.road_half) * w + 0.01 * w
    walk = depth * rng.uniform(*fam.walk) * w + 0.005 * w
    off = np.abs(xx - vx)
    c.paint(ground & (off >= road_half + walk), green, TERRAIN)
    c.paint(ground & (off < road_half + walk), asphalt, SIDEWALK)
    c.paint(ground & (off < road_half), asphalt, ROAD)

    def ground_row(min_depth: float) -> Tuple[int, float]:
        y = int(rng.uniform(horizon + min_depth * (h - horizon), h - 1))
        return y, (y - horizon) / max(h - horizon, 1)

    def edges(y: int) -> Tuple[float, float]:
        return road_half[y, 0], walk[y, 0]

    # Trees above the horizon (same texture as the terrain below it).
    for _ in range(rng.integers(*fam.trees)):
        cx = rng.uniform(0, w)
        cy = rng.uniform(horizon - 0.28 * h, horizon - 0.04 * h)
        rx, ry = rng.uniform(*fam.tree_rx) * f, rng.uniform(*fam.tree_ry) * f
        trunk = max(1, int(round(2 * f)))
        c.rect(cy, horizon, cx - trunk / 2, cx + trunk / 2, (90, 65, 45),
               VEGETATION)
        blob = ((xx - cx) / rx)**2 + ((yy - cy) / ry)**2 < 1
        c.paint(blob & (yy < horizon), green, VEGETATION)

    # Thin and small things, drawn from far to near.
    things: List[Tuple[int, str, float]] = []
    for _ in range(rng.integers(*fam.poles)):
        things.append(ground_row(0.1) + ('pole', ))
    for _ in range(rng.integers(*fam.persons)):
        things.append(ground_row(0.02) + ('person', ))
    for _ in range(rng.integers(*fam.cars)):
        things.append(ground_row(0.02) + ('car', ))
    if fam.trucks[1] > 0:  # no draw at all where a family has none
        for _ in range(rng.integers(*fam.trucks)):
            things.append(ground_row(0.3) + ('truck', ))
    for y, d, kind in sorted(things, key=lambda item: item[0]):
        half, band = edges(y)
        side = 1 if rng.random() < 0.5 else -1
        if kind == 'pole':
            px = vx + side * (half + band * rng.uniform(0.3, 0.8))
            pw = int(rng.choice(fam.pole_widths))
            top_y = y - (fam.pole_height[0] + fam.pole_height[1] * d) * h
            c.rect(top_y, y + 1, px, px + pw, _jitter(rng, (135, 135, 140),
                                                      15), POLE)
            roll = rng.random()
            if roll < 0.5:
                s = max(3, round(_size(fam.sign, d) * f))
                c.rect(top_y - s, top_y, px + pw / 2 - s / 2,
                       px + pw / 2 + s / 2,
                       _SIGN_COLOURS[rng.integers(len(_SIGN_COLOURS))],
                       TRAFFIC_SIGN)
            elif roll < 0.8:
                lw = max(2, round(_size(fam.lamp, d) * f))
                lh = int(2.5 * lw)
                lx = px + pw / 2 - lw / 2
                c.rect(top_y - lh, top_y, lx, lx + lw, (30, 30, 32),
                       TRAFFIC_LIGHT)
                lamp = int(rng.integers(3))
                c.rect(top_y - lh + lamp * lh / 3,
                       top_y - lh + (lamp + 1) * lh / 3, lx, lx + lw,
                       _LAMP_COLOURS[lamp], TRAFFIC_LIGHT)
        elif kind == 'person':
            ph = max(4, round(_size(fam.person, d) * f))
            pw = max(2, round(ph / 3))
            px = vx + side * (half + band * rng.uniform(0.15, 0.85)) - pw / 2
            head = max(1, round(ph / 5))
            legs = round(ph * 0.45)
            c.rect(y - ph, y - ph + head, px + pw * 0.2, px + pw * 0.8,
                   _jitter(rng, (215, 175, 145), 20), PERSON)
            c.rect(y - ph + head, y - legs, px, px + pw,
                   rng.uniform(20, 235, 3), PERSON)
            c.rect(y - legs, y, px, px + pw, _jitter(rng, (45, 45, 60), 20),
                   PERSON)
        elif kind == 'truck':
            tw = max(6, round(_size(fam.truck, d) * f))
            th = max(4, round(tw * 0.8))
            tx = vx + side * rng.uniform(0.2, 0.9) * max(half - tw / 2, 0)
            x1 = tx - tw / 2
            box = _jitter(rng, _FACADES[rng.integers(len(_FACADES))], 12)
            c.paint((xx >= x1) & (xx < x1 + tw) & (yy >= y - th) & (yy < y),
                    _texture(rng, (h, w), box, 5, 5, max(2, int(4 * f))),
                    TRUCK)
            c.rect(y - th * 0.95, y - th * 0.7, x1 + tw * 0.1,
                   x1 + tw * 0.9, box * 0.35 + 20, TRUCK)
            wheel = max(1, round(th * 0.15))
            for wx in (0.1, 0.7):
                c.rect(y - wheel, y, x1 + tw * wx, x1 + tw * (wx + 0.2),
                       (15, 15, 15), TRUCK)
        else:
            cw = max(4, round(_size(fam.car, d) * f))
            ch = max(2, round(cw * 0.45))
            cx = vx + side * rng.uniform(0.1, 0.9) * max(half - cw / 2, 0)
            x1 = cx - cw / 2
            body = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))],
                           15)
            c.rect(y - ch, y, x1, x1 + cw, body, CAR)
            c.rect(y - ch + max(1, ch * 0.1), y - ch * 0.55, x1 + cw * 0.15,
                   x1 + cw * 0.85, body * 0.35 + 20, CAR)
            wheel = max(1, round(ch * 0.25))
            c.rect(y - wheel, y, x1 + cw * 0.1, x1 + cw * 0.3, (15, 15, 15),
                   CAR)
            c.rect(y - wheel, y, x1 + cw * 0.7, x1 + cw * 0.9, (15, 15, 15),
                   CAR)

    # The ego vehicle's bonnet, ignored as in Cityscapes.
    if rng.random() < fam.bonnet_p:
        c.rect(h - rng.uniform(0.03, 0.07) * h, h, 0, w, (25, 25, 30),
               IGNORE)

    gain = rng.uniform(0.8, 1.15)
    img = c.img * gain + rng.standard_normal(c.img.shape) * 3
    return np.clip(img, 0, 255).astype(np.uint8), c.label


def make_demo_dataset(out_dir: str,
                      num_train: int = 64,
                      num_val: int = 16,
                      height: int = 128,
                      width: int = 256,
                      seed: int = 0,
                      verbose: bool = True,
                      family: str = DEFAULT_FAMILY) -> Dict[str, List[str]]:
    """Write the dataset; the same arguments give the same files.

    Args:
        out_dir (str): The dataset root (what a config's ``data_root`` is).
        num_train (int): Images in the train split. Defaults to 64.
        num_val (int): Images in the val split. Defaults to 16.
        height (int): Image height. Defaults to 128.
        width (int): Image width. Defaults to 256.
        seed (int): Random seed. Defaults to 0.
        verbose (bool): Print a summary. Defaults to True.
        family (str): The scene family (a key of ``FAMILIES``). Defaults to
            ``'street'``, the demo's data.

    Returns:
        dict: ``{'train': [image paths], 'val': [image paths]}``.
    """
    if min(height, width) < 32:
        raise ValueError(
            f'images must be at least 32x32, got {height}x{width}')
    get_family(family)  # an unknown name fails before anything is written
    # Each image has its own stream; other families add their index to it,
    # so their draws do not repeat the default family's.
    index = list(FAMILIES).index(family)
    key = [index] if index else []
    if num_train < 1 or num_val < 1:
        raise ValueError('each split needs at least one image, got '
                         f'num_train={num_train}, num_val={num_val}')
    written: Dict[str, List[str]] = {}
    counts = np.zeros(256, np.int64)
    for split_id, (split, number, cities) in enumerate(
        (('train', num_train, TRAIN_CITIES), ('val', num_val, VAL_CITIES))):
        written[split] = []
        for i in range(number):
            city = cities[i % len(cities)]
            rng = np.random.default_rng([seed, split_id, i, *key])
            img, label = render_scene(rng, height, width, family)
            counts += np.bincount(label.ravel(), minlength=256)
            stem = f'{city}_{i // len(cities):06d}_{19 + i:06d}'
            img_dir = osp.join(out_dir, 'leftImg8bit', split, city)
            ann_dir = osp.join(out_dir, 'gtFine', split, city)
            os.makedirs(img_dir, exist_ok=True)
            os.makedirs(ann_dir, exist_ok=True)
            img_path = osp.join(img_dir, f'{stem}_leftImg8bit.png')
            if not cv2.imwrite(img_path, img[..., ::-1]):
                raise OSError(f'could not write {img_path}')
            ann_path = osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png')
            if not cv2.imwrite(ann_path, label):
                raise OSError(f'could not write {ann_path}')
            written[split].append(img_path)
    if verbose:
        total = counts.sum()
        parts = [
            f'{CLASSES[k]} {100 * counts[k] / total:.2f}%'
            for k in range(len(CLASSES)) if counts[k]
        ]
        print(f'demo dataset ({family}): {num_train} train + {num_val} val '
              f'images of {height}x{width} in {out_dir}')
        print('pixels per class: ' + ', '.join(parts))
    return written
