package dataset

// SetBulkRows sets the size past which SQLite loads drop and re-create the
// indexes and triggers, and returns a function that restores it.
func SetBulkRows(n int) (restore func()) {
	old := bulkRows
	bulkRows = n
	return func() { bulkRows = old }
}
