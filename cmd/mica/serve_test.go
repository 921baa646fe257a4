package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
	cmd.SetArgs([]string{"--models", dir, "--addr", "127.0.0.1:0", "--threads", "1", "--data", t.TempDir(), "--memory-budget", "1.5GiB"})
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
	for _, path := range []string{"/health", "/v1/models", "/api/tags", "/sdapi/v1/sd-models", "/sdapi/v1/progress", "/mica/v1/models"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if path == "/mica/v1/models" && !strings.Contains(string(b), `"budget_bytes":1610612736`) {
			t.Fatalf("--memory-budget 1.5GiB: %s", b)
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
		{"MICA_MEMORY_BUDGET", "lots", []string{"--models", "."}, "--memory-budget"},
		{"MICA_PREFIX_CACHE", "-2", []string{"--models", "."}, "--prefix-cache -2"},
		{"MICA_STREAM_BUFFER", "0", []string{"--models", "."}, "--stream-buffer 0"},
		{"MICA_STALL_TIMEOUT", "soon", []string{"--models", "."}, `MICA_STALL_TIMEOUT="soon"`},
		{"MICA_STALL_TIMEOUT", "0s", []string{"--models", "."}, "--stall-timeout 0s"},
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

func TestServeConfigFileAndAuthRules(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "serve.conf")
	run := func(args ...string) error {
		cmd := newServeCmd()
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return cmd.ExecuteContext(context.Background())
	}
	// Values come from the file when neither flag nor variable sets them.
	os.WriteFile(conf, []byte("# mica\nmodels = /nonexistent/from-config\nthreads = 1\n"), 0o644)
	if err := run("--config", conf); err == nil || !strings.Contains(err.Error(), "/nonexistent/from-config") {
		t.Fatalf("config file models not used: %v", err)
	}
	// A flag wins over the file.
	if err := run("--config", conf, "--models", "/nonexistent/from-flag"); err == nil || !strings.Contains(err.Error(), "from-flag") {
		t.Fatalf("flag did not win: %v", err)
	}
	os.WriteFile(conf, []byte("memory-budget = 12Q\n"), 0o644)
	if err := run("--config", conf, "--models", dir, "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), `memory size "12Q"`) {
		t.Fatalf("config file memory-budget: %v", err)
	}
	os.WriteFile(conf, []byte("colour = blue\n"), 0o644)
	if err := run("--config", conf); err == nil || !strings.Contains(err.Error(), `unknown setting "colour"`) {
		t.Fatalf("unknown setting: %v", err)
	}
	if err := run("--config", filepath.Join(dir, "missing.conf")); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("missing explicit config: %v", err)
	}
	// Beyond loopback without keys is refused.
	if err := run("--models", dir, "--addr", "0.0.0.0:0", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("open non-loopback: %v", err)
	}
	// A short key is refused by the server.
	if err := run("--models", dir, "--api-key", "abc", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "shorter than 8") {
		t.Fatalf("short key: %v", err)
	}
}

// TestServePrefixCacheFlag: --prefix-cache 0 turns prefix reuse off (the
// server's Config takes a negative number for that; its 0 is the default).
func TestServePrefixCacheFlag(t *testing.T) {
	for flag, want := range map[int]int{0: -1, 1: 1, 4: 4} {
		f := serveFlags{prefixCache: flag}
		if got := f.prefixCacheConfig(); got != want {
			t.Errorf("--prefix-cache %d: Config.PrefixCache %d, want %d", flag, got, want)
		}
	}
}
