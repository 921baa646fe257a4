package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"
)

// migrations bring the database from version i to i+1. Append only: a
// released migration is never edited.
var migrations = []string{
	// 1: jobs and the image history.
	`CREATE TABLE jobs (
		id          TEXT PRIMARY KEY,
		seq         INTEGER NOT NULL UNIQUE,  -- arrival order
		ord         INTEGER NOT NULL,         -- order among equal priorities (seq until Reorder)
		kind        TEXT NOT NULL,
		model       TEXT NOT NULL,
		params      BLOB NOT NULL,
		priority    INTEGER NOT NULL DEFAULT 0,
		state       TEXT NOT NULL,
		attempts    INTEGER NOT NULL DEFAULT 0,
		timeout_ns  INTEGER NOT NULL DEFAULT 0,
		created_ns  INTEGER NOT NULL,
		started_ns  INTEGER NOT NULL DEFAULT 0,
		finished_ns INTEGER NOT NULL DEFAULT 0,
		error       TEXT NOT NULL DEFAULT '',
		images      TEXT NOT NULL DEFAULT '[]',
		info        BLOB,
		step        INTEGER NOT NULL DEFAULT 0,
		steps       INTEGER NOT NULL DEFAULT 0,
		job_no      INTEGER NOT NULL DEFAULT 0,
		job_count   INTEGER NOT NULL DEFAULT 0,
		textinfo    TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX jobs_next ON jobs(state, model, priority DESC, ord);
	CREATE TABLE history (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		job_id     TEXT NOT NULL,
		path       TEXT NOT NULL,
		infotext   TEXT NOT NULL,
		created_ns INTEGER NOT NULL
	);
	CREATE INDEX history_job ON history(job_id);`,
}

// openDB opens (creating if needed) the database file and migrates it.
func openDB(path string, durable bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	sync := "NORMAL"
	if durable {
		sync = "FULL"
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", u.String()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("jobs: open %s: %w", path, err)
	}
	// WAL lets readers run beside the writer; writes are serialised by the
	// queue's own lock, so a few connections suffice.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: %s: %w", path, err)
	}
	return db, nil
}

func migrate(db *sql.DB) error {
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("schema_version table: %w", err)
	}
	for {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var v int
		err = tx.QueryRow(`SELECT version FROM schema_version`).Scan(&v)
		if err == sql.ErrNoRows {
			v = 0
			_, err = tx.Exec(`INSERT INTO schema_version(version) VALUES (0)`)
		}
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("reading schema version: %w", err)
		}
		if v > len(migrations) {
			tx.Rollback()
			return fmt.Errorf("database schema version %d is newer than this program's (%d)", v, len(migrations))
		}
		if v == len(migrations) {
			return tx.Commit()
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(`UPDATE schema_version SET version = ?`, v+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
}

const jobColumns = `id, kind, model, params, priority, state, attempts, timeout_ns,
	created_ns, started_ns, finished_ns, error, images, info, step, steps, job_no, job_count, textinfo`

type scanner interface{ Scan(dest ...any) error }

// scanJob reads one row selected with jobColumns.
func scanJob(r scanner) (Job, error) {
	var j Job
	var params, info []byte
	var state, images string
	var timeout, created, started, finished int64
	err := r.Scan(&j.ID, &j.Kind, &j.Model, &params, &j.Priority, &state, &j.Attempts, &timeout,
		&created, &started, &finished, &j.Error, &images, &info,
		&j.Progress.Step, &j.Progress.Steps, &j.Progress.JobNo, &j.Progress.JobCount, &j.Progress.TextInfo)
	if err != nil {
		return j, err
	}
	j.State = State(state)
	if !j.State.valid() {
		return j, fmt.Errorf("job %s: unknown state %q in the database", j.ID, state)
	}
	if len(params) > 0 {
		j.Params = json.RawMessage(params)
	}
	if len(info) > 0 {
		j.Result.Info = json.RawMessage(info)
	}
	if err := json.Unmarshal([]byte(images), &j.Result.Images); err != nil {
		return j, fmt.Errorf("job %s: images column: %w", j.ID, err)
	}
	j.Timeout = time.Duration(timeout)
	j.Created = fromNanos(created)
	j.Started = fromNanos(started)
	j.Finished = fromNanos(finished)
	if j.State == Finished {
		j.Progress.Fraction = 1
	} else {
		j.Progress.Fraction = j.Progress.fraction()
	}
	return j, nil
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// statements are the prepared forms of the queries on the hot paths
// (submit, dispatch, finish, get); preparing is most of a small query's cost.
type statements struct {
	insert, get, head, start, finish, requeue, position, behind, positions, stateOf, cancel, history *sql.Stmt
}

func prepare(db *sql.DB) (*statements, error) {
	s := &statements{}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.insert, `INSERT INTO jobs (id, seq, ord, kind, model, params, priority, state, timeout_ns, created_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`},
		{&s.get, `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`},
		{&s.head, `SELECT ord, ` + jobColumns + ` FROM jobs
			WHERE state = 'queued' AND model = ? ORDER BY priority DESC, ord LIMIT 1`},
		{&s.start, `UPDATE jobs SET state = 'running', attempts = attempts + 1, started_ns = ?,
			step = 0, steps = 0, job_no = 0, job_count = 0, textinfo = '' WHERE id = ?`},
		{&s.finish, `UPDATE jobs SET state = ?, finished_ns = ?, error = ?, images = ?, info = ?,
			step = ?, steps = ?, job_no = ?, job_count = ?, textinfo = ? WHERE id = ?`},
		{&s.requeue, `UPDATE jobs SET state = 'queued', attempts = attempts - 1, started_ns = 0,
			step = 0, steps = 0, job_no = 0, job_count = 0, textinfo = '' WHERE id = ?`},
		{&s.position, `SELECT COUNT(*) FROM jobs AS o, jobs AS j
			WHERE j.id = ? AND o.state = 'queued' AND o.model = j.model
			AND (o.priority > j.priority OR (o.priority = j.priority AND o.ord < j.ord))`},
		{&s.behind, `SELECT id FROM jobs WHERE state = 'queued' AND model = ? AND priority < ? ORDER BY priority DESC, ord`},
		{&s.positions, `SELECT id FROM jobs WHERE state = 'queued' AND model = ? ORDER BY priority DESC, ord`},
		{&s.stateOf, `SELECT state, model FROM jobs WHERE id = ?`},
		{&s.cancel, `UPDATE jobs SET state = 'cancelled', finished_ns = ?, error = ? WHERE id = ? AND state = 'queued'`},
		{&s.history, `INSERT INTO history (job_id, path, infotext, created_ns) VALUES (?, ?, ?, ?)`},
	} {
		st, err := db.Prepare(p.query)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("preparing %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return s, nil
}

func (s *statements) close() {
	for _, st := range []*sql.Stmt{s.insert, s.get, s.head, s.start, s.finish, s.requeue, s.position, s.behind, s.positions, s.stateOf, s.cancel, s.history} {
		if st != nil {
			st.Close()
		}
	}
}

// countQueued reads how many jobs each model has queued.
func countQueued(db *sql.DB) (map[string]int, error) {
	rows, err := db.Query(`SELECT model, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY model`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := map[string]int{}
	for rows.Next() {
		var m string
		var c int
		if err := rows.Scan(&m, &c); err != nil {
			return nil, err
		}
		n[m] = c
	}
	return n, rows.Err()
}

// placeholders returns "?, ?, …" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
