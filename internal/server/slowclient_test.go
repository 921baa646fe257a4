package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// smallBuffers gives accepted connections small socket send buffers, so
// that a client that does not read blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(2048)
	}
	return c, err
}

// TestSlowClientDoesNotStallBatch: a streaming client that stops reading
// (its connection's buffers full, the server's write blocked) does not
// hold up another client's stream on the same batched model: events are
// written from the request's own delivery goroutine, never from the
// batcher's.
func TestSlowClientDoesNotStallBatch(t *testing.T) {
	s, err := New(Config{ModelsDir: models(t), Threads: 2, Context: 1024, Batch: 4,
		Logger: slog.New(slog.NewTextHandler(&logBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Listener = smallBuffers{ts.Listener}
	ts.Start()
	defer func() { ts.Close(); s.Close() }()

	if code, _, b := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"x","max_tokens":1}`); code != 200 {
		t.Fatalf("loading the model: %d %s", code, b)
	}
	// The stuck client: sends a long streamed request and reads nothing.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(1024)
	body := `{"model":"tiny","prompt":"Go on and on","max_tokens":600,"stream":true,"logit_bias":{"1":-100,"106":-100}}`
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	time.Sleep(time.Second) // its first ~100 chunks fill the buffers

	done := make(chan string)
	go func() {
		code, _, b := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"Hello","max_tokens":20,"stream":true,"temperature":0}`)
		done <- fmt.Sprint(code, " ", strings.Count(string(b), "data: "))
	}()
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "200 ") {
			t.Errorf("the other stream: %s", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a client that does not read stalled another client's stream")
	}
	conn.Close()
}
