//! Guichet's search: full-text card search and duplicate detection (people, cards) on tantivy.
//!
//! Empty until the cards issue: it will own the single tantivy `IndexWriter` (`SearchIndexer`) and
//! a cloneable `SearchReader`, and take its own `SearchDocument` type, never domain types.
//! Invariant: no dependency on SurrealDB (checked in `.ci/run`).
