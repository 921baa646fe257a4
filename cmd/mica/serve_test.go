package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeStartsAndStops: mica serve listens, answers /health and
// /v1/models (an empty folder), and stops cleanly when its context ends.
func TestServeStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--models", dir, "--addr", "127.0.0.1:0", "--threads", "1", "--data", t.TempDir()})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address printed: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("printed %q", line)
	}
	for _, path := range []string{"/health", "/v1/models", "/api/tags", "/sdapi/v1/sd-models", "/sdapi/v1/progress"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeFlagsAndEnv(t *testing.T) {
	for _, c := range []struct {
		env, val string
		args     []string
		want     string
	}{
		{"MICA_THREADS", "many", []string{"--models", "."}, `MICA_THREADS="many"`},
		{"MICA_MODELS", "", []string{}, "no models folder"},
		{"MICA_ADDR", "nonsense", []string{"--models", "."}, `--addr "nonsense"`},
		{"MICA_CTX", "-5", []string{"--models", "."}, "--ctx -5"},
		{"MICA_MODELS", "/nonexistent/mica-models", []string{}, "models folder"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			cmd := newServeCmd()
			cmd.SetArgs(c.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s=%s %v: %v, want %q", c.env, c.val, c.args, err, c.want)
			}
		})
	}
}
