"""Measured checks that HumanML3D caption windows line up with our copy of each CMU trial.

A window's times are seconds from the trial's first mocap frame in the AMASS copy HumanML3D was
cut from; our copies come from other conversions (bvh_cc may add a T-pose frame, cgspeed adds one
at frame 0, bvh_daz is pre-scaled, amc is the original). Three checks per source folder, written
into the dataset README:
  * length: does the last window end where our copy of the trial ends (a trimmed or padded copy
    shows as a systematic difference)?
  * caption facts vs offset: what the captions say (walking, jumping, squatting, turning) is
    measured on the window moved by -1 ... +1 s; if the copy is aligned, agreement peaks at 0;
  * frame 0: in how many files the importer found (and dropped) a prepended T-pose.
Pure numpy; imports `describe` and `io`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..io import read_source
from .describe import describe

FPS = 20.0
OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # seconds the window is moved by
# caption words -> the measured fact they promise (thresholds well inside describe()'s own)
RULES = {
    "travel": (re.compile(r"\b(walk|walks|walking|jog|jogs|jogging|run|runs|running)\b"),
               lambda f: max(f.distance, f.path_length) > 1.0),
    "jump": (re.compile(r"\b(jump|jumps|jumping|hop|hops|hopping|leap|leaps)\b"), lambda f: f.jumps >= 1),
    "squat": (re.compile(r"\b(squat|squats|squatting|crouch|crouches|crouching|sit|sits|kneel|kneels)\b"),
              lambda f: f.crouches),
    "turn": (re.compile(r"\b(turn|turns|turning|spin|spins|spinning)\b"), lambda f: abs(f.turn_degrees) >= 90),
}


@dataclass
class FolderCheck:
    folder: str
    trials: int = 0
    windows: int = 0
    end_gaps: list = None            # per trial: our length minus the last window's end, seconds
    agreement: dict = None           # offset -> (agreeing, judged) (window, rule) pairs
    tpose_first: tuple = (0, 0)      # files whose frame 0 the importer dropped as a T-pose, files looked at

    def lines(self) -> list[str]:
        gaps = np.array(self.end_gaps or [0.0])
        at_end = int((np.abs(gaps) <= 0.1).sum())
        rate = {o: a / n for o, (a, n) in self.agreement.items() if n}
        if rate:
            agree = ", ".join(f"{o:+.1f} s: {r:.2f}" for o, r in sorted(rate.items()))
            peak = "the highest" if rate[0.0] >= max(rate.values()) else "below the best"
            facts = (f"Caption facts (walk/run, jump, squat/sit, turn) agreeing with the motion measured in the "
                     f"window moved by: {agree} ({self.agreement[0.0][1]} window-fact pairs; at 0 s {peak}; a "
                     f"coarse check: it rules out shifts of seconds, not of frames).")
        else:
            facts = "Too few windows with 1 s to spare on both sides to compare offsets."
        return [
            f"`{self.folder}`: {self.trials} trials, {self.windows} HumanML3D windows. Length: the last window "
            f"ends within 0.1 s of our copy's end in {at_end} trials; it ends more than 0.5 s past our copy in "
            f"{int((gaps < -0.5).sum())} (those windows' captions are not used; a wrong frame rate or a "
            f"trimmed copy shows here); median of our length minus the last end {np.median(gaps):+.2f} s. "
            f"{facts}" + (f" Frame 0 a T-pose (dropped by the importer) in {self.tpose_first[0]} of "
                          f"{self.tpose_first[1]} files." if self.tpose_first[1] else ""),
        ]


def _judge(captions, facts) -> list[bool]:
    """Per rule that most captions state or none states: does the motion agree?"""
    out = []
    for pattern, holds in RULES.values():
        said = sum(bool(pattern.search(c.lower())) for c in captions)
        if said * 2 > len(captions):
            out.append(bool(holds(facts)))
        elif said == 0:
            out.append(not holds(facts))
    return out


def check_alignment(loaded) -> list[FolderCheck]:
    """`loaded`: (Take, positions at 20 fps on the reference body, how) of the prepare step."""
    checks: dict[str, FolderCheck] = {}
    for take, body, _ in loaded:
        if not take.human:
            continue
        c = checks.setdefault(take.folder, FolderCheck(take.folder, end_gaps=[], agreement={o: (0, 0) for o in OFFSETS}))
        c.trials += 1
        c.windows += len(take.human)
        c.end_gaps.append(len(body) / FPS - max(w.end for w in take.human))
        for w in take.human:
            if w.start + min(OFFSETS) < 0 or (w.end + max(OFFSETS)) * FPS > len(body):
                continue  # judged only where every offset fits, so the offsets compare like for like
            for o in OFFSETS:
                s, e = int(round((w.start + o) * FPS)), int(round((w.end + o) * FPS))
                votes = _judge(w.captions, describe(body[s:e], FPS))
                a, n = c.agreement[o]
                c.agreement[o] = (a + sum(votes), n + len(votes))
        if take.path.name.endswith(".bvh.gz"):
            t, n = c.tpose_first
            tpose = "dropped_tpose_frame" in read_source(take.path, fps=None).meta  # the importer decides
            c.tpose_first = (t + tpose, n + 1)
    return [checks[k] for k in sorted(checks)]
