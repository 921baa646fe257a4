package server

import (
	"testing"
)

// BenchmarkRequestOverhead is the server's own cost per request (HTTP,
// decoding, queue, encoding) around a runner that answers at once.
func BenchmarkRequestOverhead(b *testing.B) {
	for _, c := range []struct{ name, path, body string }{
		{"openai", "/v1/chat/completions", `{"model":"tiny",` + okMsgs + `}`},
		{"openai-stream", "/v1/chat/completions", `{"model":"tiny","stream":true,` + okMsgs + `}`},
		{"ollama-stream", "/api/chat", `{"model":"tiny",` + okMsgs + `}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			ts, _, _ := start(b, Config{Loader: fakeLoader(&fake{script: scripted})})
			for b.Loop() {
				if code, _, body := post(b, ts.URL+c.path, c.body); code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
		})
	}
}
