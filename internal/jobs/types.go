package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// State is where a job is in its life.
type State string

const (
	Queued      State = "queued"      // waiting for its model's worker
	Running     State = "running"     // a runner is working on it
	Finished    State = "finished"    // the runner returned a result
	Failed      State = "failed"      // the runner failed, timed out, or a crash interrupted it too often
	Cancelled   State = "cancelled"   // cancelled before or while running
	Interrupted State = "interrupted" // stopped early on request; the result holds what existed
)

// Terminal reports whether s is a final state (the job will not run again).
func (s State) Terminal() bool {
	return s == Finished || s == Failed || s == Cancelled || s == Interrupted
}

func (s State) valid() bool { return s == Queued || s == Running || s.Terminal() }

// Request is what Submit takes.
type Request struct {
	Kind     string          // "txt2img", "img2img", …: opaque to the queue, handed to the runner
	Model    string          // the model (and so the worker) that runs the job
	Params   json.RawMessage // opaque JSON for the runner; empty means null
	Priority int             // higher runs first; equal priorities run in arrival order
	Timeout  time.Duration   // 0: Options.Timeout; negative: no limit
}

// Result is what a runner produced.
type Result struct {
	Images []string        // output paths relative to the outputs folder (see SaveImage), or "temp/NAME" (KeepImage)
	Info   json.RawMessage // opaque JSON (A1111's info)
}

// ProgressState is a job's progress as A1111's /progress describes it.
type ProgressState struct {
	Step     int    // steps done in the current image
	Steps    int    // steps per image
	JobNo    int    // current image of the batch, from 0
	JobCount int    // images in the batch
	TextInfo string // free text from the runner

	Fraction    float64       // (Steps·JobNo + Step) / (Steps·JobCount), in [0,1]
	ETA         time.Duration // elapsed/Fraction − elapsed while running; 0 when unknown
	Interrupted bool
	Skipped     bool
	Preview     int // number of previews so far (0: none); the latest is Queue.Preview
}

// fraction computes A1111's progress value.
func (p ProgressState) fraction() float64 {
	count := max(p.JobCount, 1)
	if p.Steps <= 0 {
		return float64(min(p.JobNo, count)) / float64(count)
	}
	f := (float64(p.Steps)*float64(p.JobNo) + float64(p.Step)) / (float64(p.Steps) * float64(count))
	return min(max(f, 0), 1)
}

// Job is a snapshot of one job.
type Job struct {
	ID       string
	Kind     string
	Model    string
	Params   json.RawMessage
	Priority int
	State    State
	Attempts int           // how many times a runner started it (a crash while running counts)
	Timeout  time.Duration // the effective limit per attempt; 0: none
	Position int           // queued jobs, from Get, List and Queued: how many jobs of the same model run before it

	Created  time.Time
	Started  time.Time // zero until started (the latest attempt)
	Finished time.Time // zero until terminal

	Progress ProgressState
	Error    string
	Result   Result
}

// Runner does the work of jobs for one model. Run is called for one job at a
// time per model. It should check ctx (cancellation, timeout) and
// p.Interrupted / p.Skipped at each step, report through p, and return what
// it made: on interrupt, the images that exist so far. The queue cannot stop
// a runner that ignores ctx; timeouts, Cancel and Close wait for it.
type Runner interface {
	Run(ctx context.Context, j *Job, p Progress) (Result, error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, j *Job, p Progress) (Result, error)

func (f RunnerFunc) Run(ctx context.Context, j *Job, p Progress) (Result, error) { return f(ctx, j, p) }

// Progress is how a runner reports and learns about requests to stop.
// Its methods are safe to call from any goroutine.
type Progress interface {
	// Batch says image no (from 0) of count is starting; it clears the skip flag.
	Batch(no, count int)
	// Step says step of steps is done in the current image.
	Step(step, steps int)
	// Text sets the free-text status (A1111's textinfo).
	Text(s string)
	// Preview keeps img (PNG or JPEG bytes, named by mime) as the job's latest
	// preview, in memory only. The queue keeps the slice; do not modify it.
	Preview(img []byte, mime string)
	// Interrupted reports an Interrupt request: stop at this step and
	// return what exists.
	Interrupted() bool
	// Skipped reports a Skip request: abandon the current image and go on
	// with the next one of the batch.
	Skipped() bool
	// SaveImage writes an output image of this job under the outputs folder
	// and records it in the history with its infotext; it returns the path
	// relative to the outputs folder, for Result.Images.
	SaveImage(name string, data []byte, infotext string) (string, error)
	// KeepImage writes an image of this job that is not to be saved (A1111's
	// save_images false) to the data folder's temporary area: it is not in
	// the outputs or the history, and is deleted with the job or after
	// Options.TempRetention. It returns "temp/NAME", for Result.Images.
	KeepImage(name string, data []byte) (string, error)
}

// Errors callers can test for with errors.Is.
var (
	ErrNotFound    = errors.New("no such job")
	ErrNotQueued   = errors.New("job is not queued")
	ErrNotRunning  = errors.New("job is not running")
	ErrNotFinished = errors.New("job has not finished")
	ErrFinished    = errors.New("job has already finished")
	ErrNoRunner    = errors.New("no runner for model")
	ErrQueueFull   = errors.New("queue is full")
	ErrClosed      = errors.New("queue is closed")
	ErrBadRequest  = errors.New("bad job request")
)

// Filter selects jobs for List; zero fields match everything.
type Filter struct {
	States []State
	Model  string
	Kind   string
}
