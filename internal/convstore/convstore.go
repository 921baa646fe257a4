// Package convstore keeps the browser UI's chat conversations in their own
// SQLite file (conversations.db in the data folder), so they survive a
// restart and follow the person from one browser to another. A
// conversation's messages are stored as the JSON array the UI sent,
// checked to be one, never interpreted.
package convstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// Limits on what one conversation may hold.
const (
	MaxIDLen    = 64
	MaxTitleLen = 500     // bytes
	MaxModelLen = 500     // bytes
	MaxMessages = 8 << 20 // bytes of the messages JSON
)

var (
	// ErrNotFound: no conversation has that id.
	ErrNotFound = errors.New("conversation not found")
	// ErrInvalid: the conversation sent is not acceptable (the error says
	// which field and why).
	ErrInvalid = errors.New("invalid conversation")
)

// Conversation is one chat.
type Conversation struct {
	ID      string    `json:"id"`
	Title   string    `json:"title"`
	Model   string    `json:"model"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Messages is a JSON array, kept as sent; List leaves it empty.
	Messages json.RawMessage `json:"messages,omitempty"`
}

// Store is an open conversations database.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database file.
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", u.String()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("convstore: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	_, err = db.ExecContext(context.Background(), `CREATE TABLE IF NOT EXISTS conversations (
		id       TEXT PRIMARY KEY,
		title    TEXT NOT NULL,
		model    TEXT NOT NULL,
		created  INTEGER NOT NULL,
		updated  INTEGER NOT NULL,
		messages TEXT NOT NULL
	);
	CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated DESC)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("convstore: %s: creating the table: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// ValidID reports whether id can name a conversation: 1 to 64 letters,
// digits, '-' or '_'.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Check validates a conversation as sent by a client.
func Check(c Conversation) error {
	switch {
	case !ValidID(c.ID):
		return fmt.Errorf("%w: id %q: want 1 to %d letters, digits, '-' or '_'", ErrInvalid, c.ID, MaxIDLen)
	case len(c.Title) > MaxTitleLen || !utf8.ValidString(c.Title):
		return fmt.Errorf("%w: title: want valid UTF-8 of at most %d bytes", ErrInvalid, MaxTitleLen)
	case len(c.Model) > MaxModelLen || !utf8.ValidString(c.Model):
		return fmt.Errorf("%w: model: want valid UTF-8 of at most %d bytes", ErrInvalid, MaxModelLen)
	case len(c.Messages) > MaxMessages:
		return fmt.Errorf("%w: messages: %d bytes, at most %d", ErrInvalid, len(c.Messages), MaxMessages)
	}
	var arr []json.RawMessage
	if len(c.Messages) > 0 {
		if err := json.Unmarshal(c.Messages, &arr); err != nil {
			return fmt.Errorf("%w: messages: want a JSON array: %v", ErrInvalid, err)
		}
	}
	return nil
}

// Put creates or replaces a conversation and returns it as stored (created
// kept from the first Put, updated now).
func (s *Store) Put(c Conversation) (Conversation, error) {
	if err := Check(c); err != nil {
		return Conversation{}, err
	}
	if len(c.Messages) == 0 {
		c.Messages = json.RawMessage("[]")
	}
	now := time.Now().UTC()
	_, err := s.db.Exec(`INSERT INTO conversations (id, title, model, created, updated, messages) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET title = excluded.title, model = excluded.model, updated = excluded.updated, messages = excluded.messages`,
		c.ID, c.Title, c.Model, now.UnixNano(), now.UnixNano(), string(c.Messages))
	if err != nil {
		return Conversation{}, fmt.Errorf("convstore: saving %s: %w", c.ID, err)
	}
	return s.Get(c.ID)
}

// Get returns one conversation with its messages.
func (s *Store) Get(id string) (Conversation, error) {
	var c Conversation
	var created, updated int64
	var msgs string
	err := s.db.QueryRow(`SELECT id, title, model, created, updated, messages FROM conversations WHERE id = ?`, id).
		Scan(&c.ID, &c.Title, &c.Model, &created, &updated, &msgs)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("convstore: reading %s: %w", id, err)
	}
	c.Created, c.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	c.Messages = json.RawMessage(msgs)
	return c, nil
}

// List returns the conversations without their messages, most recently
// updated first; limit ≤ 0 means all.
func (s *Store) List(limit int) ([]Conversation, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.Query(`SELECT id, title, model, created, updated FROM conversations ORDER BY updated DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("convstore: listing: %w", err)
	}
	defer rows.Close()
	out := []Conversation{}
	for rows.Next() {
		var c Conversation
		var created, updated int64
		if err := rows.Scan(&c.ID, &c.Title, &c.Model, &created, &updated); err != nil {
			return nil, fmt.Errorf("convstore: listing: %w", err)
		}
		c.Created, c.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// Delete removes a conversation.
func (s *Store) Delete(id string) error {
	res, err := s.db.Exec(`DELETE FROM conversations WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("convstore: deleting %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return nil
}
