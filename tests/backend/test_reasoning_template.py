"""The CoT template: strings exactly as the published format, prompts, caption normalisation."""
import pytest

from irmogen.errors import IrmogenError
from irmogen.llm.testing import tiny_tokenizer
from irmogen.reasoning import template as T


def test_plan_strings_and_system_prompt_are_the_published_ones():
    assert T.SYSTEM == "You are an assistant who helps users understand or generate 3D human motion representations."
    assert T.P_ANALYZE == "I need to analyze the goal and identify the critical aspects to generate the motion."
    assert T.P_GENERATE == "I need to generate a motion according to the previous analysis."
    assert T.P_ASSESS == ("I need to assess the alignment between the generated motion and the goal text, "
                          "then provide specific refinement instructions for improvement.")
    assert T.P_REFINE == "I need to refine the motion according to the instruction."
    assert T.P_FINISH == "I need to finish thinking as the satisfactory motion is generated."
    assert T.NO_REFINEMENT == "No refinements needed."


def test_build_prompt_is_the_published_frame():
    prompt = T.build_prompt("a man  walks\n forward. ")
    user = ("Given a text outlining a human motion objective, employ a step-by-step thought process to realize "
            "the motion: (1) analyze the text, providing a clear explanation of the reasoning to identify "
            "essential elements; (2) conduct several rounds of motion generation and self-assessment until "
            "the motion is satisfactory. Wrap all responses in <think> and </think> tags, and formulate a plan "
            "before each step.\nGoal Text: a man walks forward.")
    assert prompt == "<bos>" + T.SYSTEM + "\n\nUser: " + user + "\n\n Response:"
    assert T.build_prompt("x", bos_token=None).startswith(T.SYSTEM)


def test_response_constants_spell_the_grammar():
    opening = "<think>[plan]" + T.P_ANALYZE + "[/plan]\n[analyze]"
    assert T.RESPONSE_OPEN == opening
    assert T.AFTER_MOTION == "[/generate]\n[plan]" + T.P_ASSESS + "[/plan]\n[assess]Assessment: "
    assert T.FINISH == "[plan]" + T.P_FINISH + "[/plan]\n</think>"


@pytest.mark.parametrize("bad", ["", "   ", "\n\t "])
def test_empty_caption_is_an_error(bad):
    with pytest.raises(IrmogenError, match="caption"):
        T.build_prompt(bad)


def test_huge_captions_are_cut_to_the_token_limit():
    tok = tiny_tokenizer()
    words = " ".join(["walks forward slowly"] * 400)
    cut = T.normalize_caption(words, tok)
    assert len(tok(cut, add_special_tokens=False)["input_ids"]) <= T.MAX_CAPTION_TOKENS
    assert words.startswith(cut)
    assert len(T.normalize_caption(words).split()) == T.MAX_CAPTION_TOKENS
    assert T.normalize_caption("a person jumps", tok) == "a person jumps"


def test_stage1_prompts():
    assert T.generation_prompt("a man waves.") == T.frame("Generate a motion that depicts a man waves.")
    ref = T.refinement_instruction_prompt([3, 7], "a man waves")
    assert ref == T.frame("Motion: <Motion><Motion_3><Motion_7></Motion>. Goal text: a man waves. "
                          "Determine how to refine the generated motion for better alignment.")
    ins = T.instructed_refinement_prompt([1], "raise the arms.", "a man waves")
    assert ins.endswith("Goal text: a man waves. Refine the motion according to the instruction: raise the arms."
                        "\n\n Response:")
    assert "Goal text" not in T.instructed_refinement_prompt([1], "raise the arms")
    assert T.motion_agent_prompt("a man waves").endswith("### Input:\na man waves\n\nResponse: <Motion>")
    assert T.caption_prompt([5], style="motion_agent").endswith("<Motion><Motion_5></Motion>\n\nResponse: ")


def test_tiny_tokenizer_round_trips_every_forced_chunk():
    tok = tiny_tokenizer()
    for s in (T.RESPONSE_OPEN, T.AFTER_ANALYSIS, T.AFTER_MOTION, T.REFINEMENT_PREFIX, T.FINISH, T.NEXT_ROUND):
        assert tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s
