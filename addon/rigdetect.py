"""Rig detection by shape: which bone plays each SMPL joint, from the hierarchy and rest positions.

For armatures whose bone names no rig map knows (`bone_000`..., a mocap skeleton naming joints
LeftShoulder/LeftElbow, a renamed mannequin). Works in world space, Z up, on bone heads and tails:
- the hips: where the spine (the chain to the highest point) and the legs (the chains to the
  floor) part; bones that merely sit on the floor beside the skeleton (IK targets under a root)
  are told apart because their branch leaves the body above the hips;
- the two legs: the two branches below the hips that reach the floor; the two arms: the two
  branches off the spine that reach out sideways;
- along a limb, the three joints (hip, knee, ankle / shoulder, elbow, wrist) whose two segments are
  straight, of similar length and longest; the bone before the shoulder is the collar, the bone
  after the ankle the toe;
- left and right from the rest positions: the character's left is up x forward, forward being
  where the toes point (without toes, Blender's front, -Y).
Failures raise RetargetError naming what is missing (1 bone, four legs, no arms). Pure numpy: no bpy.
"""
from __future__ import annotations

import itertools

import numpy as np

from .retarget import RetargetError

FLOOR_BAND = 0.12      # fraction of the height: a bone this close to the lowest point is on the floor
ARM_REACH = 0.2        # fraction of the height: an arm reaches at least this far from the spine
BLENDER_FRONT = np.array([0.0, -1.0, 0.0])
HUMANOID = "a humanoid needs hips, a spine, two legs and two arms"
BY_HAND = "Pick the bones by hand in the Bone Map panel (IRMoGen > Rig > Bone Map)"


class _Tree:
    def __init__(self, parents: np.ndarray):
        self.parents = [int(p) for p in parents]
        self.children: list[list[int]] = [[] for _ in self.parents]
        for i, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(i)

    def chain_up(self, i: int) -> list[int]:
        """i, its parent, ... up to its root."""
        out = []
        while i >= 0 and i not in out:
            out.append(i)
            i = self.parents[i]
        return out

    def depth(self, i: int) -> int:
        return len(self.chain_up(i)) - 1

    def common(self, bones) -> int:
        """Lowest common ancestor of `bones` (-1 when they lie in separate trees)."""
        chains = [self.chain_up(b) for b in bones]
        shared = set(chains[0]).intersection(*map(set, chains[1:]))
        return next((b for b in chains[0] if b in shared), -1)

    def subtree(self, i: int) -> list[int]:
        out, todo = [], [i]
        while todo:
            b = todo.pop()
            out.append(b)
            todo.extend(self.children[b])
        return out

    def path(self, top: int, bottom: int) -> list[int]:
        """Bones from `top` down to its descendant `bottom`, both included."""
        return list(reversed(self.chain_up(bottom)[:self.chain_up(bottom).index(top) + 1]))


def _limb(path: list[int], heads: np.ndarray, tails: np.ndarray, lower: int | None = None) -> tuple[int, int, int]:
    """Positions (i, j, k) on `path` of the upper, middle and lower joint of a limb: the segments
    from head i to head j and from head j to head k are straight (no bend inside), of similar
    length and long. `lower` fixes k (a hand found by its fingers)."""
    points = np.vstack([heads[path], tails[path[-1]]])
    steps = np.diff(points, axis=0)
    lengths = np.linalg.norm(steps, axis=-1)
    dirs = steps / np.maximum(lengths, 1e-9)[:, None]
    turns = np.degrees(np.arccos(np.clip(np.sum(dirs[1:] * dirs[:-1], -1), -1.0, 1.0)))  # at each inner joint

    def bend(a: int, b: int) -> float:                 # the sharpest turn strictly inside a..b
        return float(turns[a:b - 1].max()) if b - a > 1 else 0.0

    best, best_score = None, -1.0
    for i, j, k in itertools.combinations(range(len(path)), 3):
        if lower is not None and k != lower:
            continue
        up_len, low_len = np.linalg.norm(points[j] - points[i]), np.linalg.norm(points[k] - points[j])
        if up_len < 1e-6 or low_len < 1e-6:
            continue
        score = ((up_len + low_len) * np.exp(-3.0 * abs(np.log(up_len / low_len)))
                 * np.exp(-(bend(i, j) + bend(j, k)) / 15.0))
        if score > best_score:
            best, best_score = (i, j, k), score
    if best is None:
        raise RetargetError(f"not a humanoid: a limb has {len(path)} bone(s), too few for its three joints")
    return best


def detect(names, parents, heads, tails) -> dict[str, str]:
    """SMPL joint -> bone name, found by shape. `heads`/`tails`: (N, 3) rest positions in world
    space (Z up). Joints the armature has no bone for (toes, collars, neck) are left out."""
    names = list(names)
    heads, tails = np.asarray(heads, np.float64).reshape(-1, 3), np.asarray(tails, np.float64).reshape(-1, 3)
    if len(names) < 9:
        raise RetargetError(f"not a humanoid: {len(names)} bone{'' if len(names) == 1 else 's'}; {HUMANOID}",
                            f"{BY_HAND}, or use a humanoid armature")
    tree = _Tree(parents)
    low, high = np.minimum(heads[:, 2], tails[:, 2]), np.maximum(heads[:, 2], tails[:, 2])
    floor, height = float(low.min()), float(high.max() - low.min())
    if height < 1e-6:
        raise RetargetError("not a humanoid: the bones lie flat (no height)", "stand the character up")
    top = int(np.argmax(high))
    grounded = [b for b in range(len(names)) if low[b] < floor + FLOOR_BAND * height and b != top]
    if not grounded:
        raise RetargetError("not a humanoid: no legs (no bones reach the floor)")
    # Feet are the grounded bones that part from the spine lowest in the tree (IK bones part at the root).
    meet = {b: tree.common([b, top]) for b in grounded}
    deepest = max(tree.depth(m) if m >= 0 else -1 for m in meet.values())
    feet = [b for b in grounded if meet[b] >= 0 and tree.depth(meet[b]) == deepest]
    if not feet:
        raise RetargetError("not a humanoid: no legs hang from the spine", HUMANOID)
    hips = meet[feet[0]]
    spine = tree.path(hips, top)[1:]
    legs = _legs(tree, feet, hips, spine)
    # Other branches that stand on the floor (a quadruped's other pair); IK targets lying on the
    # floor under a root bone do not reach up to the body, so they are not counted.
    trunk = spine + tree.chain_up(hips)
    to_legs = {b for leg in legs for b in tree.chain_up(leg)}
    others = [c for b in trunk for c in tree.children[b] if c not in trunk and c not in to_legs
              and low[tree.subtree(c)].min() < floor + FLOOR_BAND * height
              and high[tree.subtree(c)].max() > floor + 0.3 * height]
    if others:
        raise RetargetError(f"not a humanoid: {2 + len(others)} legs reach the floor (a humanoid has 2)", BY_HAND)
    arms = _arms(tree, spine, heads, tails, hips, height)

    up = np.array([0.0, 0.0, 1.0])
    mapping: dict[str, str] = {"pelvis": names[hips]}
    leg_joints, toes_forward = {}, []
    for start in legs:
        end = max((b for b in tree.subtree(start) if b in feet), key=lambda b: (tree.depth(b), -low[b]))
        path = tree.path(start, end)
        i, j, k = _limb(path, heads, tails)
        leg_joints[start] = (path[i], path[j], path[k], path[k + 1] if k + 1 < len(path) else None)
        if k + 1 < len(path):
            toes_forward.append(heads[path[k + 1]] - heads[path[k]])
    forward = np.mean(toes_forward, axis=0) if toes_forward else BLENDER_FRONT
    forward = forward - up * forward.dot(up)
    if np.linalg.norm(forward) < 1e-6:
        forward = BLENDER_FRONT
    left = np.cross(up, forward / np.linalg.norm(forward))

    centre = heads[hips]
    for start, side in _sides(tree, legs, heads, centre, left, "legs"):
        hip, knee, ankle, toe = leg_joints[start]
        mapping.update({f"{side}_hip": names[hip], f"{side}_knee": names[knee], f"{side}_ankle": names[ankle]})
        if toe is not None:
            mapping[f"{side}_foot"] = names[toe]
    for start, side in _sides(tree, arms, heads, centre, left, "arms"):
        reach = tree.subtree(start)
        far = max(reach, key=lambda b: (_sideways(tails[b] - centre, up), tree.depth(b)))
        path = tree.path(start, far)
        hand = next((n for n, b in enumerate(path) if n >= 2 and len(tree.children[b]) >= 3), None)
        i, j, k = _limb(path, heads, tails, hand)
        mapping.update({f"{side}_shoulder": names[path[i]], f"{side}_elbow": names[path[j]],
                        f"{side}_wrist": names[path[k]]})
        if i > 0:
            mapping[f"{side}_collar"] = names[path[i - 1]]
    mapping.update(_spine_joints(names, spine, [tree.parents[a] for a in arms], heads))
    return mapping


def _legs(tree: _Tree, feet: list[int], hips: int, spine: list[int]) -> list[int]:
    """The first bone of each leg: the branches below the hips holding the feet."""
    split = tree.common(feet)
    if split == hips or split in spine:
        split = hips
    legs = [c for c in tree.children[split] if c not in spine and any(f in tree.subtree(c) for f in feet)]
    if len(legs) != 2:
        count = f"{len(legs)} leg reaches" if len(legs) == 1 else f"{len(legs)} legs reach"
        raise RetargetError(f"not a humanoid: {count} the floor below the hips (a humanoid has 2)", BY_HAND)
    return legs


def _sideways(v: np.ndarray, up: np.ndarray) -> float:
    return float(np.linalg.norm(v - up * v.dot(up)))


def _arms(tree: _Tree, spine: list[int], heads, tails, hips: int, height: float) -> list[int]:
    """The first bone of each arm: branches off the spine reaching out sideways."""
    up, centre = np.array([0.0, 0.0, 1.0]), heads[hips]
    arms = []
    for s in spine:
        for c in tree.children[s]:
            if c in spine:
                continue
            reach = max(_sideways(p - centre, up) for b in tree.subtree(c) for p in (heads[b], tails[b]))
            if reach > ARM_REACH * height:
                arms.append(c)
    if len(arms) != 2:
        count = f"{len(arms)} arm branches" if len(arms) == 1 else f"{len(arms)} arms branch"
        raise RetargetError(f"not a humanoid: {count} sideways from the spine (a humanoid has 2)", BY_HAND)
    return arms


def _sides(tree: _Tree, starts: list[int], heads, centre, left, what: str):
    """The two limbs as (start bone, "left" / "right"), by the side their joints lie on."""
    side = [float(np.mean(heads[tree.subtree(s)] - centre, axis=0).dot(left)) for s in starts]
    if side[0] * side[1] >= 0:
        raise RetargetError(f"cannot tell the left from the right {what}: both lie on one side of the body",
                            BY_HAND)
    order = (0, 1) if side[0] > 0 else (1, 0)
    return [(starts[order[0]], "left"), (starts[order[1]], "right")]


def _spine_joints(names, spine: list[int], arm_parents: list[int], heads) -> dict[str, str]:
    """spine1..3, neck and head along the chain from the hips to the top: the chest (spine3) is
    where the arms hang; below it the bones nearest SMPL's spine heights, above it the neck and
    the bone after it (the head)."""
    chest = max(spine.index(p) for p in arm_parents)
    out = {"spine3": names[spine[chest]]}
    below, above = spine[:chest], spine[chest + 1:]
    base, span = heads[spine[0], 2], heads[spine[chest], 2] - heads[spine[0], 2]
    taken: set[int] = set()
    for joint, fraction in (("spine1", 0.0), ("spine2", 0.8)):
        free = [b for b in below if b not in taken]
        if free and (joint == "spine1" or len(below) > 1):
            pick = min(free, key=lambda b: abs(heads[b, 2] - (base + fraction * span)))
            out[joint] = names[pick]
            taken.add(pick)
    if above:
        out["neck"] = names[above[0]]
        if len(above) > 1:
            out["head"] = names[above[1]]
    return out
