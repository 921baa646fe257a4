// Package layering holds the test that enforces mica's package layering: every
// import points down the level table of ARCHITECTURE.md, and the engine never
// imports net/http. It has no code of its own.
package layering
