package server

import (
	"fmt"
	"strings"
	"testing"
)

// TestOpenAIChoices: n answers in one request, batched and one at a time:
// choice i is the answer of n = 1 with seed+i, streamed deltas carry their
// choice's index and add up to the non-streamed choices, every choice gets
// its finish chunk, usage counts the prompt once; n over the limit is a
// 400 naming n.
func TestOpenAIChoices(t *testing.T) {
	for _, batch := range []int{4, 0} {
		t.Run(fmt.Sprint("batch", batch), func(t *testing.T) {
			ts, _, _ := start(t, Config{Batch: batch})
			body := func(n, seed int, extra string) string {
				return fmt.Sprintf(`{"model":"tiny","messages":[{"role":"user","content":"Tell me a story"}],
				 "temperature":1.2,"seed":%d,"max_tokens":5,"n":%d,"logit_bias":{"1":-100,"106":-100}%s}`, seed, n, extra)
			}
			const n = 3
			code, _, b := post(t, ts.URL+"/v1/chat/completions", body(n, 7, ""))
			if code != 200 {
				t.Fatalf("n=%d: %d %s", n, code, b)
			}
			var all chatCompletion
			decodeJSON(t, b, &all)
			if len(all.Choices) != n || all.Usage == nil {
				t.Fatalf("n=%d: %s", n, b)
			}
			gen := 0
			for i, c := range all.Choices {
				code, _, b1 := post(t, ts.URL+"/v1/chat/completions", body(1, 7+i, ""))
				var one chatCompletion
				decodeJSON(t, b1, &one)
				if code != 200 || c.Index != i || c.Message.Content == nil || one.Choices[0].Message.Content == nil ||
					*c.Message.Content != *one.Choices[0].Message.Content {
					t.Errorf("choice %d of %s\nalone with seed %d: %s", i, b, 7+i, b1)
				}
				if i == 0 && one.Usage.PromptTokens != all.Usage.PromptTokens {
					t.Errorf("prompt tokens %d with n=%d, %d alone", all.Usage.PromptTokens, n, one.Usage.PromptTokens)
				}
				gen += one.Usage.CompletionTokens
			}
			if all.Usage.CompletionTokens != gen {
				t.Errorf("completion tokens %d, the answers made %d", all.Usage.CompletionTokens, gen)
			}
			// Streamed.
			code, _, b = post(t, ts.URL+"/v1/chat/completions", body(n, 7, `,"stream":true,"stream_options":{"include_usage":true}`))
			if code != 200 {
				t.Fatalf("stream: %d %s", code, b)
			}
			texts := make([]string, n)
			roles, finishes := make([]int, n), make([]int, n)
			evs := sseEvents(t, b)
			for _, e := range evs[:len(evs)-1] {
				var ch chatCompletion
				decodeJSON(t, []byte(e), &ch)
				if ch.Usage != nil {
					if ch.Usage.PromptTokens != all.Usage.PromptTokens || ch.Usage.CompletionTokens != gen {
						t.Errorf("streamed usage %s", e)
					}
					continue
				}
				c := ch.Choices[0]
				texts[c.Index] += c.Delta.Content
				if c.Delta.Role != "" {
					roles[c.Index]++
				}
				if c.FinishReason != nil {
					finishes[c.Index]++
				}
			}
			for i := range n {
				if texts[i] != *all.Choices[i].Message.Content || roles[i] != 1 || finishes[i] != 1 {
					t.Errorf("streamed choice %d: %q (%d role, %d finish chunks), non-streamed %q", i, texts[i], roles[i], finishes[i], *all.Choices[i].Message.Content)
				}
			}
			// Legacy completions too.
			code, _, b = post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Once","n":2,"max_tokens":3,"seed":1}`)
			var cmp chatCompletion
			decodeJSON(t, b, &cmp)
			if code != 200 || len(cmp.Choices) != 2 || cmp.Choices[1].Index != 1 {
				t.Errorf("completions n=2: %d %s", code, b)
			}
			code, _, b = post(t, ts.URL+"/v1/chat/completions", body(9, 7, ""))
			if code != 400 || !strings.Contains(string(b), `"param":"n"`) {
				t.Errorf("n=9: %d %s", code, b)
			}
		})
	}
}
