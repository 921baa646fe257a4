package jobs

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Options configure a Queue; the zero value is usable.
type Options struct {
	// Resolve finds the runner for a model that has none registered (it may
	// load the model). Called by the worker before each job, so it should
	// be cheap once the model is loaded. Nil: only registered runners.
	Resolve func(model string) (Runner, error)
	// Timeout is the default limit per job attempt (Request.Timeout 0); 0: none.
	Timeout time.Duration
	// MaxParallel is how many jobs (necessarily of different models) may run
	// at once; default 1.
	MaxParallel int
	// MaxAttempts is how many starts a job gets before a crash while it runs
	// marks it failed instead of re-queueing it; default 2.
	MaxAttempts int
	// MaxQueued limits the number of queued jobs; default 10000.
	MaxQueued int
	// MaxParams limits Request.Params; default 64 MiB.
	MaxParams int
	// SubscriberBuffer is how many undelivered events a subscriber may hold
	// before the oldest step events are dropped; default 256.
	SubscriberBuffer int
	// TempRetention is how long images that are not to be saved
	// (KeepImage) are kept for the job's clients; default 1 hour. A job's
	// are also deleted with the job.
	TempRetention time.Duration
	// Durable makes every commit wait for the disk (synchronous=FULL), so
	// commits also survive power loss; the default survives process crashes.
	Durable bool
	// Logger receives problems the queue cannot return to a caller (a
	// failed write after a job ended); nil discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxParallel <= 0 {
		o.MaxParallel = 1
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 2
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 10000
	}
	if o.MaxParams <= 0 {
		o.MaxParams = 64 << 20
	}
	if o.SubscriberBuffer <= 0 {
		o.SubscriberBuffer = 256
	}
	if o.TempRetention <= 0 {
		o.TempRetention = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Queue is the persistent job queue of one data folder. Its methods are safe
// for concurrent use.
type Queue struct {
	dir    string
	db     *sql.DB
	opt    Options
	lock   *os.File
	events *broker

	// wmu serialises every change of job state (database writes and the
	// events that announce them); taken before mu.
	wmu     sync.Mutex
	seq     int64          // the last arrival number given
	queued  map[string]int // queued jobs per model
	nqueued int            // their sum
	st      *statements

	mu      sync.Mutex
	closed  bool
	runners map[string]Runner
	running map[string]*run // by job id
	busy    map[string]bool // models with a running job

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// CrashReason is the error of a job that was running when the process died
// more often than Options.MaxAttempts allows.
const CrashReason = "interrupted by a crash/restart"

// DBName is the database file inside the data folder.
const DBName = "mica.db"

// DefaultDataDir is the user's data folder for mica: $XDG_DATA_HOME/mica,
// or ~/.local/share/mica.
func DefaultDataDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "mica"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("jobs: no data folder: %w", err)
	}
	return filepath.Join(home, ".local", "share", "mica"), nil
}

// Open opens the queue stored in dataDir (created if missing), recovers jobs
// that a crash left running, and starts dispatching.
func Open(dataDir string, o Options) (*Queue, error) {
	o.defaults()
	if dataDir == "" {
		return nil, errors.New("jobs: empty data folder")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil { // prompts are private
		return nil, fmt.Errorf("jobs: data folder: %w", err)
	}
	lock, err := lockDir(filepath.Join(dataDir, "mica.lock"))
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	db, err := openDB(filepath.Join(dataDir, DBName), o.Durable)
	if err != nil {
		lock.Close()
		return nil, err
	}
	q := &Queue{
		dir: dataDir, db: db, opt: o, lock: lock,
		events:  newBroker(o.SubscriberBuffer),
		runners: map[string]Runner{},
		running: map[string]*run{},
		busy:    map[string]bool{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if err := q.recover(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("jobs: %s: recovering: %w", dataDir, err)
	}
	fail := func(err error) (*Queue, error) {
		if q.st != nil {
			q.st.close()
		}
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("jobs: %s: %w", dataDir, err)
	}
	if err := db.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM jobs`).Scan(&q.seq); err != nil {
		return fail(err)
	}
	if q.queued, err = countQueued(db); err != nil {
		return fail(err)
	}
	for _, n := range q.queued {
		q.nqueued += n
	}
	if q.st, err = prepare(db); err != nil {
		return fail(err)
	}
	removeTemporary(dataDir)
	sweepTemp(dataDir, o.TempRetention)
	q.wg.Add(2)
	go q.dispatcher()
	go q.sweeper()
	q.kick()
	return q, nil
}

// recover re-queues jobs left running by a crash, or fails those that have
// used up their attempts. Nothing runs yet, so every running row is stale.
func (q *Queue) recover() error {
	tx, err := q.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UnixNano()
	if _, err := tx.Exec(`UPDATE jobs SET state = ?, finished_ns = ?, error = ?
		WHERE state = ? AND attempts >= ?`,
		Failed, now, CrashReason, Running, q.opt.MaxAttempts); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE jobs SET state = ?, step = 0, steps = 0, job_no = 0, job_count = 0, textinfo = ''
		WHERE state = ?`, Queued, Running); err != nil {
		return err
	}
	return tx.Commit()
}

// Dir is the data folder.
func (q *Queue) Dir() string { return q.dir }

// Close stops dispatching, asks running jobs to stop (they are re-queued,
// without counting the attempt, for the next Open), waits for their runners
// to return, and closes the database. Runners must honour ctx for Close to
// return promptly.
func (q *Queue) Close() error {
	q.wmu.Lock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.wmu.Unlock()
		return nil
	}
	q.closed = true
	for _, r := range q.running {
		r.closing = true
		r.cancel(ErrClosed)
	}
	q.mu.Unlock()
	q.wmu.Unlock()
	close(q.stop)
	q.wg.Wait()
	q.events.close()
	q.st.close()
	err := q.db.Close()
	q.lock.Close()
	return err
}

// Register makes r the runner of model's jobs (replacing any earlier one)
// and starts them if any are queued.
func (q *Queue) Register(model string, r Runner) {
	q.mu.Lock()
	q.runners[model] = r
	q.mu.Unlock()
	q.kick()
}

// Unregister removes model's runner; its queued jobs wait for a new one
// (or Options.Resolve). A running job is not affected.
func (q *Queue) Unregister(model string) {
	q.mu.Lock()
	delete(q.runners, model)
	q.mu.Unlock()
}

func (q *Queue) runnable(model string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.runners[model] != nil || q.opt.Resolve != nil
}

// Submit adds a job to the queue.
func (q *Queue) Submit(r Request) (Job, error) {
	if err := q.check(r); err != nil {
		return Job{}, err
	}
	if !q.runnable(r.Model) {
		return Job{}, fmt.Errorf("jobs: %w %q", ErrNoRunner, r.Model)
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = q.opt.Timeout
	}
	timeout = max(timeout, 0)
	params := []byte(r.Params)
	if len(params) == 0 {
		params = []byte("null")
	}

	q.wmu.Lock()
	defer q.wmu.Unlock()
	// The id is made under the lock so that ids sort in arrival order.
	now := time.Now()
	j := Job{
		ID: newID(now), Kind: r.Kind, Model: r.Model, Params: json.RawMessage(params),
		Priority: r.Priority, State: Queued, Timeout: timeout, Created: time.Unix(0, now.UnixNano()),
	}
	if q.isClosed() {
		return Job{}, ErrClosed
	}
	if q.nqueued >= q.opt.MaxQueued {
		return Job{}, fmt.Errorf("jobs: %w (%d jobs queued)", ErrQueueFull, q.nqueued)
	}
	seq := q.seq + 1
	if _, err := q.st.insert.Exec(j.ID, seq, seq, j.Kind, j.Model, params, j.Priority, int64(timeout), now.UnixNano()); err != nil {
		return Job{}, fmt.Errorf("jobs: submit: %w", err)
	}
	q.seq = seq
	q.queued[j.Model]++
	q.nqueued++
	q.events.publish(Event{Type: EventQueued, JobID: j.ID, Model: j.Model, State: Queued, Time: now, Positions: q.inserted(j)})
	q.kick()
	return j, nil
}

func (q *Queue) check(r Request) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("jobs: %w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Kind == "" || len(r.Kind) > 64:
		return bad("kind %q must have 1 to 64 bytes", r.Kind)
	case r.Model == "" || len(r.Model) > 1024:
		return bad("model name must have 1 to 1024 bytes")
	case len(r.Params) > q.opt.MaxParams:
		return bad("params are %d bytes, more than the limit of %d", len(r.Params), q.opt.MaxParams)
	case len(r.Params) > 0 && !json.Valid(r.Params):
		return bad("params are not valid JSON")
	}
	return nil
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Get returns a job; a running job's progress is the live one.
func (q *Queue) Get(id string) (Job, error) {
	if !validID(id) {
		return Job{}, fmt.Errorf("jobs: %w: %q", ErrNotFound, id)
	}
	q.mu.Lock()
	r := q.running[id]
	q.mu.Unlock()
	if r != nil {
		return r.snapshot(), nil
	}
	j, err := scanJob(q.st.get.QueryRow(id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("jobs: %w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("jobs: get %s: %w", id, err)
	}
	if j.State == Running {
		// It ended or started between the two looks: look again.
		q.mu.Lock()
		r = q.running[id]
		q.mu.Unlock()
		if r != nil {
			return r.snapshot(), nil
		}
	}
	if j.State == Queued {
		j.Position, err = q.position(j.ID)
		if err != nil {
			return Job{}, fmt.Errorf("jobs: get %s: %w", id, err)
		}
	}
	return j, nil
}

// inserted gives the positions a newly queued job j moved (Event.Positions):
// its own, after every queued job of its model of equal or higher priority
// (it arrived last), and those of the lower-priority ones it went ahead of
// (usually none, so that this costs one index look, not a scan of the
// queue). The caller holds wmu and has counted j in q.queued.
func (q *Queue) inserted(j Job) map[string]int {
	rows, err := q.st.behind.Query(j.Model, j.Priority)
	if err != nil {
		q.opt.Logger.Error("jobs: reading queue positions", "model", j.Model, "err", err)
		return nil
	}
	defer rows.Close()
	var behind []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			q.opt.Logger.Error("jobs: reading queue positions", "model", j.Model, "err", err)
			return nil
		}
		behind = append(behind, id)
	}
	if err := rows.Err(); err != nil {
		q.opt.Logger.Error("jobs: reading queue positions", "model", j.Model, "err", err)
		return nil
	}
	at := q.queued[j.Model] - 1 - len(behind)
	out := map[string]int{j.ID: at}
	for i, id := range behind {
		out[id] = at + 1 + i
	}
	return out
}

// moved returns the positions of model's queued jobs that differ from
// before (a positions result taken before a change), for reordered events.
func (q *Queue) moved(model string, before map[string]int) map[string]int {
	after := q.positions(model)
	if after == nil {
		return nil
	}
	out := map[string]int{}
	for id, p := range after {
		if b, ok := before[id]; !ok || b != p {
			out[id] = p
		}
	}
	return out
}

// positions maps every queued job of model to its position (as
// Job.Position); nil (logged) when the store cannot be read.
func (q *Queue) positions(model string) map[string]int {
	rows, err := q.st.positions.Query(model)
	return q.scanPositions(model, rows, err)
}

// positionsTx is positions within transaction tx.
func (q *Queue) positionsTx(tx *sql.Tx, model string) map[string]int {
	rows, err := tx.Stmt(q.st.positions).Query(model)
	return q.scanPositions(model, rows, err)
}

func (q *Queue) scanPositions(model string, rows *sql.Rows, err error) map[string]int {
	if err != nil {
		q.opt.Logger.Error("jobs: reading queue positions", "model", model, "err", err)
		return nil
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			q.opt.Logger.Error("jobs: reading queue positions", "model", model, "err", err)
			return nil
		}
		out[id] = len(out)
	}
	if err := rows.Err(); err != nil {
		q.opt.Logger.Error("jobs: reading queue positions", "model", model, "err", err)
		return nil
	}
	return out
}

// position counts the queued jobs of the same model that run before id.
func (q *Queue) position(id string) (int, error) {
	var n int
	err := q.st.position.QueryRow(id).Scan(&n)
	return n, err
}

// List returns jobs matching f, newest first, at most limit (default 50, at
// most 1000) after cursor ("" for the first page). next is the cursor of the
// following page, "" when there is none.
func (q *Queue) List(f Filter, cursor string, limit int) (jobs []Job, next string, err error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	where, args := "1", []any{}
	if cursor != "" {
		c, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || c <= 0 {
			return nil, "", fmt.Errorf("jobs: list: bad cursor %q", cursor)
		}
		where += " AND seq < ?"
		args = append(args, c)
	}
	if len(f.States) > 0 {
		for _, s := range f.States {
			if !s.valid() {
				return nil, "", fmt.Errorf("jobs: list: %w: unknown state %q", ErrBadRequest, s)
			}
			args = append(args, string(s))
		}
		where += " AND state IN (" + placeholders(len(f.States)) + ")"
	}
	if f.Model != "" {
		where += " AND model = ?"
		args = append(args, f.Model)
	}
	if f.Kind != "" {
		where += " AND kind = ?"
		args = append(args, f.Kind)
	}
	args = append(args, limit+1)
	rows, err := q.db.Query(`SELECT seq, `+jobColumns+` FROM jobs WHERE `+where+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: list: %w", err)
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var seq int64
		j, err := scanJob(seqScanner{rows, &seq})
		if err != nil {
			return nil, "", fmt.Errorf("jobs: list: %w", err)
		}
		jobs = append(jobs, j)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("jobs: list: %w", err)
	}
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = strconv.FormatInt(seqs[limit-1], 10)
	}
	q.overlay(jobs)
	// Queued jobs get their positions: one look per model on the page.
	pos := map[string]map[string]int{}
	for i := range jobs {
		if jobs[i].State != Queued {
			continue
		}
		m := jobs[i].Model
		if _, ok := pos[m]; !ok {
			pos[m] = q.positions(m)
		}
		jobs[i].Position = pos[m][jobs[i].ID]
	}
	return jobs, next, nil
}

// seqScanner prepends the seq column to a jobColumns scan.
type seqScanner struct {
	r   scanner
	seq *int64
}

func (s seqScanner) Scan(dest ...any) error { return s.r.Scan(append([]any{s.seq}, dest...)...) }

// overlay replaces running jobs by their live snapshots.
func (q *Queue) overlay(jobs []Job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range jobs {
		if r := q.running[jobs[i].ID]; r != nil {
			jobs[i] = r.snapshot()
		}
	}
}

// Queued returns the queued jobs of model ("" for all models) in the order
// they will run (per model: priority, then arrival or Reorder).
func (q *Queue) Queued(model string) ([]Job, error) {
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE state = ?`
	args := []any{Queued}
	if model != "" {
		query += ` AND model = ?`
		args = append(args, model)
	}
	rows, err := q.db.Query(query+` ORDER BY priority DESC, ord`, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: queued: %w", err)
	}
	defer rows.Close()
	var jobs []Job
	pos := map[string]int{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("jobs: queued: %w", err)
		}
		j.Position = pos[j.Model]
		pos[j.Model]++
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// Running returns the jobs running now.
func (q *Queue) Running() []Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := make([]Job, 0, len(q.running))
	for _, r := range q.running {
		jobs = append(jobs, r.snapshot())
	}
	return jobs
}

// Cancel cancels a job: a queued one at once, a running one by cancelling
// its context (the runner stops at its next step; the job then ends
// cancelled, keeping whatever result the runner returned).
func (q *Queue) Cancel(id string) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	r := q.running[id]
	q.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		r.cancelled = true
		r.mu.Unlock()
		r.cancel(errCancelled)
		return nil
	}
	state, model, err := q.stateOf(id)
	if err != nil {
		return err
	}
	if state != Queued {
		return fmt.Errorf("jobs: cancel %s: %w (%s)", id, ErrFinished, state)
	}
	now := time.Now()
	if _, err := q.st.cancel.Exec(now.UnixNano(), "cancelled while queued", id); err != nil {
		return fmt.Errorf("jobs: cancel %s: %w", id, err)
	}
	q.dequeued(model)
	q.events.publish(Event{Type: EventCancelled, JobID: id, Model: model, State: Cancelled, Time: now, Error: "cancelled while queued"})
	return nil
}

var errCancelled = errors.New("cancelled")

// stateOf reads a job's state; the caller holds wmu.
func (q *Queue) stateOf(id string) (State, string, error) {
	var state, model string
	err := q.st.stateOf.QueryRow(id).Scan(&state, &model)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("jobs: %w: %q", ErrNotFound, id)
	}
	if err != nil {
		return "", "", fmt.Errorf("jobs: %s: %w", id, err)
	}
	return State(state), model, nil
}

// Interrupt asks running jobs to stop at their next step and return what
// exists (A1111's interrupt). id "" means every running job. A job that is
// not running is an error (ErrNotRunning, ErrNotFound); "" with nothing
// running is not.
func (q *Queue) Interrupt(id string) error {
	return q.flag(id, func(r *run) { r.interrupt() })
}

// Skip asks running jobs to abandon their current image and go on with the
// next image of the batch (A1111's skip). id "" means every running job.
func (q *Queue) Skip(id string) error {
	return q.flag(id, func(r *run) { r.skip() })
}

func (q *Queue) flag(id string, f func(*run)) error {
	q.mu.Lock()
	var rs []*run
	if id == "" {
		for _, r := range q.running {
			rs = append(rs, r)
		}
	} else if r := q.running[id]; r != nil {
		rs = append(rs, r)
	}
	q.mu.Unlock()
	if id != "" && len(rs) == 0 {
		q.wmu.Lock()
		state, _, err := q.stateOf(id)
		q.wmu.Unlock()
		if err != nil {
			return err
		}
		return fmt.Errorf("jobs: %s: %w (%s)", id, ErrNotRunning, state)
	}
	for _, r := range rs {
		f(r)
	}
	return nil
}

// SetPriority changes the priority of a queued job.
func (q *Queue) SetPriority(id string, priority int) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	var before map[string]int
	_, model, err := q.stateOf(id)
	if err == nil {
		before = q.positions(model)
	}
	res, err := q.db.Exec(`UPDATE jobs SET priority = ? WHERE id = ? AND state = ?`, priority, id, Queued)
	if err != nil {
		return fmt.Errorf("jobs: set priority of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		q.reordered(model, before)
		return nil
	}
	state, _, err := q.stateOf(id)
	if err != nil {
		return err
	}
	return fmt.Errorf("jobs: set priority of %s: %w (%s)", id, ErrNotQueued, state)
}

// Reorder puts the listed queued jobs in the given order among the places
// they occupy now: the other jobs keep their places, and priority still
// comes first (Reorder orders jobs of equal priority; use SetPriority to
// move a job across priorities).
func (q *Queue) Reorder(ids []string) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	tx, err := q.db.Begin()
	if err != nil {
		return fmt.Errorf("jobs: reorder: %w", err)
	}
	defer tx.Rollback()
	ords := make([]int64, 0, len(ids))
	seen := map[string]bool{}
	before := map[string]map[string]int{} // by model
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("jobs: reorder: %w: %s listed twice", ErrBadRequest, id)
		}
		seen[id] = true
		var ord int64
		var state, model string
		err := tx.QueryRow(`SELECT ord, state, model FROM jobs WHERE id = ?`, id).Scan(&ord, &state, &model)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("jobs: reorder: %w: %q", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("jobs: reorder: %w", err)
		}
		if State(state) != Queued {
			return fmt.Errorf("jobs: reorder %s: %w (%s)", id, ErrNotQueued, state)
		}
		ords = append(ords, ord)
		if _, ok := before[model]; !ok {
			before[model] = q.positionsTx(tx, model)
		}
	}
	slices.Sort(ords)
	for i, id := range ids {
		if _, err := tx.Exec(`UPDATE jobs SET ord = ? WHERE id = ?`, ords[i], id); err != nil {
			return fmt.Errorf("jobs: reorder: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("jobs: reorder: %w", err)
	}
	for m, b := range before {
		q.reordered(m, b)
	}
	return nil
}

// reordered tells all-jobs subscribers the new positions of model's queued
// jobs that moved since before; the caller holds wmu.
func (q *Queue) reordered(model string, before map[string]int) {
	if before == nil {
		return // the store could not be read (logged)
	}
	if moved := q.moved(model, before); len(moved) > 0 {
		q.events.publish(Event{Type: EventReordered, Model: model, Time: time.Now(), Positions: moved})
	}
}

// sweeper deletes expired temporary images while the queue is open.
func (q *Queue) sweeper() {
	defer q.wg.Done()
	t := time.NewTicker(min(q.opt.TempRetention/4+time.Millisecond, 10*time.Minute))
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			sweepTemp(q.dir, q.opt.TempRetention)
		}
	}
}

// Delete removes a finished (terminal) job from the queue. Its saved images
// and history entries stay; its temporary images (KeepImage) are deleted.
func (q *Queue) Delete(id string) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	state, model, err := q.stateOf(id)
	if err != nil {
		return err
	}
	if !state.Terminal() {
		return fmt.Errorf("jobs: delete %s: %w (%s)", id, ErrNotFinished, state)
	}
	var images string
	if err := q.db.QueryRow(`SELECT images FROM jobs WHERE id = ?`, id).Scan(&images); err != nil {
		return fmt.Errorf("jobs: delete %s: %w", id, err)
	}
	if _, err := q.db.Exec(`DELETE FROM jobs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("jobs: delete %s: %w", id, err)
	}
	var rels []string
	if json.Unmarshal([]byte(images), &rels) == nil {
		if err := RemoveTemp(q.dir, rels); err != nil {
			q.opt.Logger.Warn("jobs: deleting a job's temporary images", "job", id, "err", err)
		}
	}
	q.events.publish(Event{Type: EventDeleted, JobID: id, Model: model, State: state, Time: time.Now()})
	return nil
}

// Subscribe streams events of one job (jobID) or of all jobs (""). A
// one-job stream starts with the job's current state (queued, step while
// running, or its terminal event) and is closed after its terminal event;
// an unknown job gives a closed channel. Slow readers never stall the queue:
// step events are coalesced and, past Options.SubscriberBuffer undelivered
// events, the oldest are dropped (Event.Dropped counts them). Call cancel
// when done; the channel is then closed.
func (q *Queue) Subscribe(jobID string) (<-chan Event, func()) {
	if jobID == "" {
		return q.events.subscribe("", nil)
	}
	// Under wmu no state change can slip between the snapshot and the
	// registration.
	q.wmu.Lock()
	defer q.wmu.Unlock()
	j, err := q.Get(jobID)
	if err != nil {
		ch := make(chan Event)
		close(ch)
		return ch, func() {}
	}
	e := Event{JobID: j.ID, Model: j.Model, State: j.State, Time: time.Now(), Progress: j.Progress, Error: j.Error}
	switch j.State {
	case Queued:
		e.Type = EventQueued
	case Running:
		e.Type = EventStep
		e.Preview = j.Progress.Preview > 0
	default:
		e.Type = terminalEvent(j.State)
		e.Time = j.Finished
		if j.State == Finished || j.State == Interrupted {
			res := j.Result
			e.Result = &res
		}
	}
	return q.events.subscribe(jobID, []Event{e})
}

func terminalEvent(s State) EventType {
	switch s {
	case Finished:
		return EventFinished
	case Cancelled:
		return EventCancelled
	case Interrupted:
		return EventInterrupted
	}
	return EventFailed
}

// Preview returns the latest preview of a running job (nil when none).
func (q *Queue) Preview(id string) (img []byte, mime string, n int) {
	q.mu.Lock()
	r := q.running[id]
	q.mu.Unlock()
	if r == nil {
		return nil, "", 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.preview, r.mime, r.progress.Preview
}

// dequeued counts one job of model less in the queue; the caller holds wmu.
func (q *Queue) dequeued(model string) {
	q.nqueued--
	if q.queued[model]--; q.queued[model] <= 0 {
		delete(q.queued, model)
	}
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
