"""The IRMoGen chain-of-thought template and the stage-1 ("manual") task prompts, as text.

Every string the model was trained on lives here once: the system and user prompts, the five plan
strings, the tags of the response grammar (reference/model.md, "IRMoGen-CoT"), the stage-1 task
prompts and Motion-Agent's instruction prompt. The parser, the decoder and the training data engine
all read these constants, so a trace written by one is read by the others.

Response grammar (tags are ordinary text; `[plan]X[/plan]` is written `plan(X)` here):
    <think>plan(P_ANALYZE)\n[analyze]ANALYSIS[/analyze]\nplan(P_GENERATE)\n
    ( [generate]<Motion>...</Motion>[/generate]\nplan(P_ASSESS)\n
      [assess]Assessment: A\nRefinement: R[/assess]\nplan(P_REFINE)\n )*
    ... the last round's plan is plan(P_FINISH)\n</think>, after R == "No refinements needed."

Pure Python: imports neither torch nor transformers (nor bpy).
"""
from __future__ import annotations

import re

from ..errors import IrmogenError
from ..llm.tokens import codes_to_text

SYSTEM = "You are an assistant who helps users understand or generate 3D human motion representations."
USER = ("Given a text outlining a human motion objective, employ a step-by-step thought process to "
        "realize the motion: (1) analyze the text, providing a clear explanation of the reasoning to "
        "identify essential elements; (2) conduct several rounds of motion generation and "
        "self-assessment until the motion is satisfactory. Wrap all responses in <think> and </think> "
        "tags, and formulate a plan before each step.\nGoal Text: {caption}")

P_ANALYZE = "I need to analyze the goal and identify the critical aspects to generate the motion."
P_GENERATE = "I need to generate a motion according to the previous analysis."
P_ASSESS = ("I need to assess the alignment between the generated motion and the goal text, then "
            "provide specific refinement instructions for improvement.")
P_REFINE = "I need to refine the motion according to the instruction."
P_FINISH = "I need to finish thinking as the satisfactory motion is generated."
PLANS = (P_ANALYZE, P_GENERATE, P_ASSESS, P_REFINE, P_FINISH)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PLAN_OPEN, PLAN_CLOSE = "[plan]", "[/plan]"
ANALYZE_OPEN, ANALYZE_CLOSE = "[analyze]", "[/analyze]"
GENERATE_OPEN, GENERATE_CLOSE = "[generate]", "[/generate]"
ASSESS_OPEN, ASSESS_CLOSE = "[assess]", "[/assess]"
ASSESSMENT_PREFIX = "Assessment: "
REFINEMENT_PREFIX = "\nRefinement: "   # separates the assessment from the refinement instruction
# Tokenizers glue a space to the word after it (" the", "▁the"), so the decoder forces these
# prefixes WITHOUT their final space and lets the model's first text token bring it.
LEAD = " "
NO_REFINEMENT = "No refinements needed."
NEWLINE = "\n"                          # after every closing tag of the response


def plan(text: str) -> str:
    """`[plan]text[/plan]\\n`: one plan line of the response, with its newline."""
    return PLAN_OPEN + text + PLAN_CLOSE + NEWLINE


# The constant stretches of a response. The decoder feeds each in one forward call.
RESPONSE_OPEN = THINK_OPEN + plan(P_ANALYZE) + ANALYZE_OPEN           # then the analysis
AFTER_ANALYSIS = ANALYZE_CLOSE + NEWLINE + plan(P_GENERATE) + GENERATE_OPEN  # then <Motion>
AFTER_MOTION = GENERATE_CLOSE + NEWLINE + plan(P_ASSESS) + ASSESS_OPEN + ASSESSMENT_PREFIX  # ends with LEAD
AFTER_REFINEMENT = ASSESS_CLOSE + NEWLINE
NEXT_ROUND = plan(P_REFINE) + GENERATE_OPEN                             # then <Motion>
FINISH = plan(P_FINISH) + THINK_CLOSE

# IRG-MotionLLM's training code tokenizes a trace piece by piece: each tag, each plan text, each
# newline between steps and each free text on its own, then concatenates the ids. These are the
# cuts inside our forced stretches ("\nRefinement:" sits inside the assessment text, so it stays).
_PIECE = re.compile(r"(</?think>|\[/?(?:plan|analyze|generate|assess)\]|</?Motion>|\n(?!Refinement:))")


def template_pieces(text: str) -> list[str]:
    """A forced stretch of template text cut into the pieces IRG tokenizes separately."""
    return [p for p in _PIECE.split(text) if p]


# ---- caption normalisation -----------------------------------------------------------------
# Captions longer than this are cut (in tokens of the model's tokenizer when one is given, else in
# whitespace-separated words, each at least one token). HumanML3D captions are < 60 tokens; the
# limit only guards the context window against pasted essays.
MAX_CAPTION_TOKENS = 256


def normalize_caption(caption: str, tokenizer=None, max_tokens: int = MAX_CAPTION_TOKENS) -> str:
    """Strip, collapse runs of whitespace to one space, cut to `max_tokens`; empty -> IrmogenError."""
    if not isinstance(caption, str):
        raise IrmogenError(f"caption: expected text, got {type(caption).__name__}")
    text = " ".join(caption.split())
    if not text:
        raise IrmogenError("caption: empty text", hint="describe the motion, e.g. 'a person waves with the right hand'")
    if tokenizer is None:
        return " ".join(text.split(" ")[:max_tokens])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > max_tokens:
        text = tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).strip()
    return text


# ---- prompts ---------------------------------------------------------------------------------
def frame(user: str, bos_token: str | None = "<bos>") -> str:
    """The chat frame every task shares: bos + SYSTEM + "\\n\\n" + "User: " + user + "\\n\\n" + " Response:".

    As IRG does, ".." in the user prompt becomes "." (a caption's own full stop before the template's).
    """
    return (bos_token or "") + SYSTEM + "\n\n" + "User: " + user.replace("..", ".") + "\n\n" + " Response:"


def build_prompt(caption: str, bos_token: str | None = "<bos>", tokenizer=None) -> str:
    """The IRMoGen-CoT inference prompt for a goal caption; the response starts with `<think>`.

    `bos_token` is the tokenizer's bos text ("<bos>" for Gemma); encode the result without adding
    special tokens again.
    """
    return frame(USER.format(caption=normalize_caption(caption, tokenizer)), bos_token)


# Stage-1 atomic tasks (reference/model.md "Stage-1 inference"). The generation, refinement-
# instruction and instructed-refinement wordings are the published ones; the assessment, direct
# refinement, goal-only refinement and captioning wordings are ours, kept in the same style, and the
# training data engine must use these very strings. `{motion}` is `<Motion>...</Motion>` text.
GENERATE_TASK = "Generate a motion that depicts {caption}."
ANALYZE_TASK = "Goal text: {caption}. Analyze the goal text and identify the critical aspects to generate the motion."
ANALYSIS_GENERATE_TASK = "Goal text: {caption}. Analysis: {analysis} Generate a motion according to the analysis."
ASSESS_TASK = ("Motion: {motion}. Goal text: {caption}. Assess the alignment between the motion and "
               "the goal text.")
REFINEMENT_TASK = ("Motion: {motion}. Goal text: {caption}. Determine how to refine the generated "
                   "motion for better alignment.")
INSTRUCTED_REFINE_TASK = ("Motion: {motion}. Goal text: {caption}. Refine the motion according to the "
                          "instruction: {instruction}.")
INSTRUCTION_ONLY_REFINE_TASK = "Motion: {motion}. Refine the motion according to the instruction: {instruction}."
DIRECT_REFINE_TASK = "Motion: {motion}. Goal text: {caption}. Refine the motion to match the goal text."
CAPTION_TASK = "Describe the motion represented by {motion} using plain English"  # as IRG's captioning

# Motion-Agent's base-model prompts; the generation response continues the motion after "<Motion>".
_MOTION_AGENT_HEAD = ("Below is an instruction that describes a task, paired with an input that provides "
                      "further context. Write a response that appropriately completes the request.\n\n")
MOTION_AGENT_PROMPT = (_MOTION_AGENT_HEAD + "### Instruction:\nGenerate a motion matching the following input "
                       "human motion description\n\n### Input:\n{caption}\n\nResponse: <Motion>")
MOTION_AGENT_CAPTION_PROMPT = (_MOTION_AGENT_HEAD + "### Instruction:\nGenerate a caption matching the following "
                               "input human motion token sequence.\n\n### Input:\n{motion}\n\nResponse: ")


def _sentence(text: str) -> str:
    """Drop one trailing full stop so that templates ending in '.' do not write '..'."""
    return text[:-1] if text.endswith(".") else text


def generation_prompt(caption: str, bos_token="<bos>", tokenizer=None) -> str:
    return frame(GENERATE_TASK.format(caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def analysis_prompt(caption: str, bos_token="<bos>", tokenizer=None) -> str:
    """Stage-1 goal analysis: the answer names the goal's critical aspects."""
    return frame(ANALYZE_TASK.format(caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def analysis_generation_prompt(caption: str, analysis: str, bos_token="<bos>", tokenizer=None) -> str:
    """Stage-1 analysis-guided generation: the answer is the motion."""
    return frame(ANALYSIS_GENERATE_TASK.format(caption=_sentence(normalize_caption(caption, tokenizer)),
                                               analysis=" ".join(analysis.split())), bos_token)


def assessment_prompt(codes, caption: str, bos_token="<bos>", tokenizer=None) -> str:
    return frame(ASSESS_TASK.format(motion=codes_to_text(codes),
                                    caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def refinement_instruction_prompt(codes, caption: str, bos_token="<bos>", tokenizer=None) -> str:
    return frame(REFINEMENT_TASK.format(motion=codes_to_text(codes),
                                        caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def instructed_refinement_prompt(codes, instruction: str, caption: str | None = None,
                                 bos_token="<bos>", tokenizer=None) -> str:
    """Refine `codes` by `instruction`; with no goal caption the 'Goal text' clause is left out."""
    instruction = _sentence(normalize_caption(instruction, tokenizer))
    if caption is None:
        task = INSTRUCTION_ONLY_REFINE_TASK.format(motion=codes_to_text(codes), instruction=instruction)
        return frame(task, bos_token)
    return frame(INSTRUCTED_REFINE_TASK.format(motion=codes_to_text(codes), instruction=instruction,
                                               caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def direct_refinement_prompt(codes, caption: str, bos_token="<bos>", tokenizer=None) -> str:
    return frame(DIRECT_REFINE_TASK.format(motion=codes_to_text(codes),
                                           caption=_sentence(normalize_caption(caption, tokenizer))), bos_token)


def caption_prompt(codes, bos_token="<bos>", style: str = "irmogen") -> str:
    """Captioning prompt; `style="motion_agent"` gives Motion-Agent's own (its m2t adapter's) prompt."""
    if style == "motion_agent":
        return (bos_token or "") + MOTION_AGENT_CAPTION_PROMPT.format(motion=codes_to_text(codes))
    return frame(CAPTION_TASK.format(motion=codes_to_text(codes)), bos_token)


def motion_agent_prompt(caption: str, bos_token="<bos>", tokenizer=None) -> str:
    """Motion-Agent's prompt (its own frame, no SYSTEM); ends inside the motion, after `<Motion>`."""
    return (bos_token or "") + MOTION_AGENT_PROMPT.format(caption=normalize_caption(caption, tokenizer))
