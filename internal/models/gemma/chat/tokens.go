// Package chat renders Gemma 3 and Gemma 4 instruction-tuned chat prompts
// byte for byte as their official Jinja templates do, and parses model output
// back into answer, thinking and tool calls.
//
// The renderers are Go transcriptions of the templates, not a Jinja engine:
// RenderGemma4Vars follows google-gemma-4-31B-it.jinja (the template real
// Gemma 4 GGUF files carry) and RenderGemma3Vars follows the chat_template of
// Gemma 3's tokenizer_config.json, including how they treat missing and
// mistyped values and where they fail. Template variables are kept as ordered
// JSON (Value), because the templates print Python's rendering of them and
// iterate objects in key order.
//
// The strings below are the special tokens the formats are made of (their
// ids are given in each comment). RenderSegments tells which parts of a
// prompt are the template's markup, where these may be tokenized as special
// tokens, and which come from the caller and must never be.
//
// Parser (and ParseGemma4) turn a model's output back into answer, thinking
// and tool calls, also while it streams.
package chat

// Gemma 4 special-token strings, with their ids in the Gemma 4 vocabulary.
const (
	// BOS is the beginning-of-sequence token (id 2), which both templates
	// write first as text.
	BOS = "<bos>"
	// EOS is the end-of-sequence token (id 1), a stop token.
	EOS = "<eos>"

	// TurnStart opens a turn; the role name and "\n" follow (id 105).
	TurnStart = "<|turn>"
	// TurnEnd closes a turn (id 106); it ends a model answer and is a stop token.
	TurnEnd = "<turn|>"
	// Think at the top of the system turn switches thinking on (id 98).
	Think = "<|think|>"
	// ChannelStart opens a channel; "thought\n" and the reasoning follow (id 100).
	ChannelStart = "<|channel>"
	// ChannelEnd closes a channel (id 101).
	ChannelEnd = "<channel|>"
	// ToolStart opens a tool declaration in the system turn (id 46).
	ToolStart = "<|tool>"
	// ToolEnd closes a tool declaration (id 47).
	ToolEnd = "<tool|>"
	// ToolCallStart opens a tool call, "call:NAME{args}" (id 48).
	ToolCallStart = "<|tool_call>"
	// ToolCallEnd closes a tool call (id 49).
	ToolCallEnd = "<tool_call|>"
	// ToolResponseStart opens a tool result, "response:NAME{...}" (id 50).
	// The model writes it after its tool calls to hand over to the host, so
	// it is also a stop token.
	ToolResponseStart = "<|tool_response>"
	// ToolResponseEnd closes a tool result (id 51).
	ToolResponseEnd = "<tool_response|>"
	// Quote delimits strings in tool declarations, calls and results (id 52).
	Quote = `<|"|>`

	// ImagePlaceholder stands for one image in a prompt (id 258880); the
	// multimodal front end expands it to ImageStart, the soft tokens, ImageEnd.
	ImagePlaceholder = "<|image|>"
	// ImageStart begins an expanded image (id 255999).
	ImageStart = "<|image>"
	// ImageEnd ends an expanded image (id 258882).
	ImageEnd = "<image|>"
	// AudioPlaceholder stands for one audio clip (id 258881).
	AudioPlaceholder = "<|audio|>"
	// AudioStart begins expanded audio (id 256000).
	AudioStart = "<|audio>"
	// AudioEnd ends expanded audio (id 258883).
	AudioEnd = "<audio|>"
	// VideoPlaceholder stands for one video (id 258884).
	VideoPlaceholder = "<|video|>"

	// EmptyThought is the empty thought channel the template appends to the
	// generation prompt when thinking is off.
	EmptyThought = ChannelStart + "thought\n" + ChannelEnd
)

// Gemma 3 special-token strings, with their ids in the Gemma 3 vocabulary.
const (
	// Gemma3TurnStart opens a turn; the role ("user" or "model") and "\n"
	// follow (id 105).
	Gemma3TurnStart = "<start_of_turn>"
	// Gemma3TurnEnd closes a turn (id 106); a stop token.
	Gemma3TurnEnd = "<end_of_turn>"
	// Gemma3Image stands for one image in a prompt (id 255999); mica, as
	// llama.cpp's mtmd, expands it to "<start_of_image>", the soft tokens,
	// "<end_of_image>" with no newlines added (HF's processor adds "\n\n"
	// around it).
	Gemma3Image = "<start_of_image>"
	// Gemma3ImageEnd ends an expanded image (id 256000).
	Gemma3ImageEnd = "<end_of_image>"
)

// Gemma4Markers are the Gemma 4 special-token strings that structure a
// conversation. The output parser never lets them through as answer or
// thinking text.
var Gemma4Markers = []string{
	TurnStart, TurnEnd, Think, ChannelStart, ChannelEnd, ToolStart, ToolEnd,
	ToolCallStart, ToolCallEnd, ToolResponseStart, ToolResponseEnd, Quote,
	ImagePlaceholder, ImageStart, ImageEnd, AudioPlaceholder, AudioStart, AudioEnd,
	VideoPlaceholder,
}

// Gemma3Markers are the Gemma 3 special-token strings that structure a
// conversation.
var Gemma3Markers = []string{Gemma3TurnStart, Gemma3TurnEnd, Gemma3Image, Gemma3ImageEnd}
