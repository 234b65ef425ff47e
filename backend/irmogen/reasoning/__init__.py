"""IRMoGen interleaved reasoning: the CoT template, the trace parser, the constrained streaming
decoder and the one-call tasks (generate, manual stage-1 loop, refine, assess, caption).

`template` and `parser` are pure text; `decoder` and `tasks` need torch and a MotionLLM.
This package file imports nothing so that the pure parts stay light.
"""
