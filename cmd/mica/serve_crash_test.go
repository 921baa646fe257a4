package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mica/internal/synth"
	"mica/internal/tensor"
	"mica/internal/testenv"
)

// TestServeChild is not a test: TestServeKeepsJobsAcrossKill runs the test
// binary with MICA_SERVE_CHILD set to make it a `mica serve` process.
func TestServeChild(t *testing.T) {
	args := os.Getenv("MICA_SERVE_CHILD")
	if args == "" {
		t.Skip("runs only as the child of TestServeKeepsJobsAcrossKill")
	}
	cmd := newServeCmd()
	cmd.SetArgs(strings.Split(args, "\n"))
	cmd.SetOut(os.Stdout)
	cmd.SetErr(io.Discard)
	cmd.ExecuteContext(context.Background())
}

func startChild(t *testing.T, args []string) (*exec.Cmd, string) {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	c.Env = append(os.Environ(), "MICA_SERVE_CHILD="+strings.Join(args, "\n"))
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.Process.Kill()
		t.Fatalf("the child printed no address: %v", err)
	}
	go io.Copy(io.Discard, out)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		c.Process.Kill()
		t.Fatalf("child printed %q", line)
	}
	return c, url
}

type jobState struct {
	ID       string
	State    string
	Attempts int
	Images   []string
	Error    string
}

func getJob(t *testing.T, url, id string) jobState {
	t.Helper()
	resp, err := http.Get(url + "/mica/v1/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j jobState
	json.NewDecoder(resp.Body).Decode(&j)
	return j
}

// TestServeKeepsJobsAcrossKill: mica serve killed with SIGKILL while a job
// runs and two wait loses none of them: after a restart the running one
// runs again (a second attempt) and all three finish.
func TestServeKeepsJobsAcrossKill(t *testing.T) {
	tok := testenv.Shared(t, "testdata", "clip", "bpe_simple_vocab_16e6.txt.gz")
	dir := t.TempDir()
	if _, err := synth.WriteSD(filepath.Join(dir, "tiny.safetensors"), synth.SDOptions{Preset: "sd-test", Type: tensor.F16, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	args := []string{"--models", dir, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--threads", "2", "--clip-tokenizer", tok}
	child, url := startChild(t, args)
	defer func() { child.Process.Kill(); child.Wait() }()
	submit := func(steps string) string {
		resp, err := http.Post(url+"/mica/v1/jobs", "application/json",
			strings.NewReader(`{"kind":"txt2img","params":{"prompt":"x","width":64,"height":64,"steps":`+steps+`}}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j jobState
		json.NewDecoder(resp.Body).Decode(&j)
		if resp.StatusCode != 202 || j.ID == "" {
			t.Fatalf("submit: %d %+v", resp.StatusCode, j)
		}
		return j.ID
	}
	long, a, b := submit("60"), submit("2"), submit("2")
	deadline := time.Now().Add(60 * time.Second)
	for getJob(t, url, long).State != "running" {
		if time.Now().After(deadline) {
			t.Fatal("the first job never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // some steps into it
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	child, url = startChild(t, args)
	for _, id := range []string{long, a, b} {
		for {
			j := getJob(t, url, id)
			if j.State == "finished" {
				if id == long && j.Attempts != 2 {
					t.Errorf("the killed job ran %d times, want 2", j.Attempts)
				}
				if len(j.Images) != 1 {
					t.Errorf("job %s: %d images", id, len(j.Images))
				}
				break
			}
			if j.State != "queued" && j.State != "running" {
				t.Fatalf("job %s ended %s: %s", id, j.State, j.Error)
			}
			if time.Now().After(deadline.Add(60 * time.Second)) {
				t.Fatalf("job %s still %s", id, j.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
