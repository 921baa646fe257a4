//go:build unix

package jobs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash tests re-execute this test binary as a child process that opens
// a queue, starts a job whose runner blocks, and reports; the parent then
// kills it with SIGKILL (no deferred code, no Close) and reopens the folder.
const childEnv = "MICA_JOBS_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		crashChild(dir)
		return // not reached: the parent kills the child
	}
	os.Exit(m.Run())
}

// crashChild submits two more jobs when the folder is new, then runs
// whatever comes first with a runner that writes half an image and blocks,
// and prints "RUNNING <id> <attempts>".
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	started := make(chan *Job, 1)
	q, err := Open(dir, Options{})
	if err != nil {
		fail(err)
	}
	q.Register("m", RunnerFunc(func(ctx context.Context, j *Job, p Progress) (Result, error) {
		p.Batch(0, 1)
		p.Step(3, 20)
		started <- j
		<-ctx.Done() // never: the process is killed first
		return Result{}, nil
	}))
	if os.Getenv("MICA_JOBS_CRASH_SUBMIT") == "1" {
		for _, pri := range []int{5, 0, 0} {
			if _, err := q.Submit(Request{Kind: "txt2img", Model: "m", Priority: pri}); err != nil {
				fail(err)
			}
		}
	}
	select {
	case j := <-started:
		fmt.Println("RUNNING", j.ID, j.Attempts)
	case <-time.After(10 * time.Second):
		fail(fmt.Errorf("no job started"))
	}
	time.Sleep(time.Minute) // a pending timer: the runtime sees no deadlock
}

// crashOnce runs a child on dir, waits until a job runs, kills it with
// SIGKILL and returns the running job's id and attempt count.
func crashOnce(t *testing.T, dir string, submit bool) (string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	if submit {
		cmd.Env = append(cmd.Env, "MICA_JOBS_CRASH_SUBMIT=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "RUNNING" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL", cmd.ProcessState)
	}
	return f[1], f[2]
}

func TestRecoveryAfterKill9(t *testing.T) {
	dir := t.TempDir()
	// First crash: the priority-5 job was running, two jobs were queued.
	running, attempts := crashOnce(t, dir, true)
	if attempts != "1" {
		t.Fatalf("first run's attempt %s", attempts)
	}
	q := openTest(t, dir, Options{})
	j, err := q.Get(running)
	if err != nil || j.State != Queued || j.Attempts != 1 {
		t.Fatalf("after kill -9 the running job is %+v, %v", j, err)
	}
	queued, err := q.Queued("m")
	if err != nil || len(queued) != 3 || queued[0].ID != running {
		t.Fatalf("after kill -9 the queue is %v, %v", queued, err)
	}
	q.Close()

	// Second crash of the same job: its second attempt was its last
	// (MaxAttempts 2), so it fails with the reason; the others survive.
	again, attempts := crashOnce(t, dir, false)
	if again != running || attempts != "2" {
		t.Fatalf("second run started %s (attempt %s), want %s (2)", again, attempts, running)
	}
	q = openTest(t, dir, Options{})
	j, err = q.Get(running)
	if err != nil || j.State != Failed || j.Error != CrashReason || j.Finished.IsZero() {
		t.Fatalf("after a second kill -9 the job is %+v, %v", j, err)
	}
	if j.Progress.Step != 0 {
		t.Errorf("progress of a crashed job: %+v", j.Progress)
	}
	queued, _ = q.Queued("m")
	if len(queued) != 2 {
		t.Fatalf("queued jobs lost: %v", queued)
	}
	q.Register("m", RunnerFunc(func(context.Context, *Job, Progress) (Result, error) { return Result{}, nil }))
	for _, j := range queued {
		if j := wait(t, q, j.ID); j.State != Finished {
			t.Errorf("recovered job %s: %s %q", j.ID, j.State, j.Error)
		}
	}
}
