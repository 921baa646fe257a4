// Package jobs is mica's persistent job queue: every image generation is a
// job that is submitted, ordered by priority then arrival, run by one worker
// per model, observed through progress snapshots and events, and recorded in
// an embedded SQLite database under one data folder so that queued, running
// and finished jobs survive a restart, kill -9 included.
//
// The queue does not know what a job computes. A Runner, registered per model
// name or resolved by a function, does the work and reports through a
// Progress; params and results are opaque JSON to the queue. Generated images
// are written under the data folder's outputs/YYYY-MM-DD/ by write-then-rename
// and recorded in a history table; images that are not to be saved (A1111's
// save_images false) go to temp/ instead, outside the history, and are
// deleted with their job or after Options.TempRetention.
//
// Durability: every state change (submit, start, finish, cancel, reorder,
// delete) is one SQLite transaction in WAL mode. Step progress and previews
// are kept in memory only; the last progress is written when a job ends.
// With the default synchronous=NORMAL a process crash loses nothing that was
// committed; Options.Durable (synchronous=FULL) also survives power loss.
//
// The package does not serve HTTP: the image API builds its endpoints and
// event streams on Queue, Job and Subscribe.
package jobs
