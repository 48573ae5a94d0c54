package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// The casbin_rule table is shared with Casbin tools (any program that uses
// gorm-adapter on this database). Such a program, unless it calls
// gormadapter.TurnOffAutoMigrate, runs gorm's AutoMigrate on the table,
// which narrows v0–v5 to nullable varchar(100) and, on SQLite, rebuilds the
// table without the service's indexes and triggers. CheckSchema finds such
// damage; Migrate repairs it.

// ruleTable is the table of Casbin rules.
const ruleTable = "casbin_rule"

// ruleColumn is a text column of casbin_rule as the service creates it:
// VARCHAR(width) NOT NULL with the empty string as default.
type ruleColumn struct {
	name  string
	width int
}

var ruleColumns = []ruleColumn{
	{"ptype", 32}, {"v0", 1024}, {"v1", 1024}, {"v2", 1024}, {"v3", 1024}, {"v4", 1024}, {"v5", 1024},
}

// ruleIndex is an index of casbin_rule the service needs.
type ruleIndex struct {
	name    string
	unique  bool
	columns []string
}

var ruleIndexes = []ruleIndex{
	{"idx_casbin_rule", true, []string{"ptype", "v0", "v1", "v2", "v3", "v4", "v5"}},
	{"idx_casbin_rule_ptype_v1", false, []string{"ptype", "v1"}},
	{"idx_casbin_rule_ptype_v2", false, []string{"ptype", "v2"}},
}

func (ix ruleIndex) create() string {
	u := ""
	if ix.unique {
		u = "UNIQUE "
	}
	return fmt.Sprintf("CREATE %sINDEX %s ON %s (%s)", u, ix.name, ruleTable, strings.Join(ix.columns, ", "))
}

func (ix ruleIndex) String() string {
	u := ""
	if ix.unique {
		u = "unique "
	}
	return fmt.Sprintf("%sindex %s (%s)", u, ix.name, strings.Join(ix.columns, ", "))
}

// ruleDomain is the SQL expression of a rule row's Casbin domain (p rules:
// v1, g rules: v2), for a row named by r (NEW or OLD).
func ruleDomain(r string) string {
	return fmt.Sprintf("(CASE WHEN %[1]s.ptype LIKE 'p%%' THEN %[1]s.v1 WHEN %[1]s.ptype LIKE 'g%%' THEN %[1]s.v2 END)", r)
}

// sqliteNote returns the statements of a SQLite trigger body that note one
// rule row (r: NEW or OLD) added (add) or removed: the tenant whose id is
// the row's domain gets its policy version bumped and the change counted
// in casbin_rule_external.
func sqliteNote(r string, add bool) string {
	dom := ruleDomain(r)
	where := fmt.Sprintf("id = CAST(%[1]s AS INTEGER) AND CAST(id AS TEXT) = %[1]s", dom)
	a, rm := 1, 0
	if !add {
		a, rm = 0, 1
	}
	return fmt.Sprintf(`UPDATE tenants SET policy_version = policy_version + 1 WHERE %[1]s;
  INSERT INTO casbin_rule_external (tenant_id, added, removed, first_version, last_version)
    SELECT id, %[2]d, %[3]d, policy_version, policy_version FROM tenants WHERE %[1]s
    ON CONFLICT (tenant_id) DO UPDATE SET added = added + excluded.added,
      removed = removed + excluded.removed, last_version = excluded.last_version;`, where, a, rm)
}

// ruleTriggers are the names of the triggers on casbin_rule, per dialect.
var ruleTriggers = map[Dialect][]string{
	SQLite:   {"casbin_rule_external_insert", "casbin_rule_external_update", "casbin_rule_external_delete"},
	Postgres: {"casbin_rule_external_row", "casbin_rule_external_truncate"},
}

// triggerSQL returns the statements that create the rule triggers. They
// note every rule written by another program; the service's own writes
// (see InOwnTxContext) are left alone.
func triggerSQL(d Dialect) []string {
	if d == SQLite {
		when := "WHEN NOT EXISTS (SELECT 1 FROM casbin_rule_own_write)"
		return []string{
			`CREATE TRIGGER casbin_rule_external_insert AFTER INSERT ON casbin_rule ` + when + `
BEGIN
  ` + sqliteNote("NEW", true) + `
END`,
			`CREATE TRIGGER casbin_rule_external_update AFTER UPDATE ON casbin_rule ` + when + `
BEGIN
  ` + sqliteNote("OLD", false) + `
  ` + sqliteNote("NEW", true) + `
END`,
			`CREATE TRIGGER casbin_rule_external_delete AFTER DELETE ON casbin_rule ` + when + `
BEGIN
  ` + sqliteNote("OLD", false) + `
END`,
		}
	}
	return []string{
		`CREATE OR REPLACE FUNCTION casbin_rule_note_external(p_ptype TEXT, p_v1 TEXT, p_v2 TEXT, p_added BIGINT, p_removed BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  dom TEXT;
  tid BIGINT;
  ver BIGINT;
BEGIN
  dom := CASE WHEN p_ptype LIKE 'p%' THEN p_v1 WHEN p_ptype LIKE 'g%' THEN p_v2 END;
  IF dom IS NULL OR dom !~ '^[1-9][0-9]{0,17}$' THEN
    RETURN;
  END IF;
  UPDATE tenants SET policy_version = policy_version + 1 WHERE id = dom::BIGINT
    RETURNING id, policy_version INTO tid, ver;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO casbin_rule_external AS e (tenant_id, added, removed, first_version, last_version)
    VALUES (tid, p_added, p_removed, ver, ver)
    ON CONFLICT (tenant_id) DO UPDATE SET added = e.added + EXCLUDED.added,
      removed = e.removed + EXCLUDED.removed, last_version = EXCLUDED.last_version;
END $$`,
		`CREATE OR REPLACE FUNCTION casbin_rule_external_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('auth.own_write', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM casbin_rule_note_external(OLD.ptype, OLD.v1, OLD.v2, 0, 1);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM casbin_rule_note_external(NEW.ptype, NEW.v1, NEW.v2, 1, 0);
  END IF;
  RETURN NULL;
END $$`,
		`CREATE OR REPLACE FUNCTION casbin_rule_external_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r RECORD;
BEGIN
  IF current_setting('auth.own_write', true) = 'on' THEN
    RETURN NULL;
  END IF;
  FOR r IN SELECT ptype, v1, v2 FROM casbin_rule LOOP
    PERFORM casbin_rule_note_external(r.ptype, r.v1, r.v2, 0, 1);
  END LOOP;
  RETURN NULL;
END $$`,
		`CREATE TRIGGER casbin_rule_external_row AFTER INSERT OR UPDATE OR DELETE ON casbin_rule
  FOR EACH ROW EXECUTE FUNCTION casbin_rule_external_row()`,
		// gorm-adapter's SavePolicy empties the table with TRUNCATE, which
		// fires no row trigger.
		`CREATE TRIGGER casbin_rule_external_truncate BEFORE TRUNCATE ON casbin_rule
  FOR EACH STATEMENT EXECUTE FUNCTION casbin_rule_external_truncate()`,
	}
}

// ruleTriggersVersion is the migration that creates the rule triggers
// (their text is triggerSQL's, so that repair can create them again).
const ruleTriggersVersion = 6

// createRuleTriggers creates the rule triggers anew.
func (d *DB) createRuleTriggers(tx *gorm.DB) error {
	for _, t := range ruleTriggers[d.dialect] {
		if err := tx.Exec("DROP TRIGGER IF EXISTS " + t + d.onRules()).Error; err != nil {
			return fmt.Errorf("drop trigger %s: %w", t, err)
		}
	}
	for _, s := range triggerSQL(d.dialect) {
		if err := tx.Exec(s).Error; err != nil {
			return fmt.Errorf("create the triggers of casbin_rule: %w", err)
		}
	}
	return nil
}

// schemaTables are the tables the rule triggers need, per dialect.
var schemaTables = map[Dialect][]string{
	SQLite:   {"tenants", "casbin_rule_external", "casbin_rule_own_write"},
	Postgres: {"tenants", "casbin_rule_external"},
}

// SchemaError says how the schema differs from the one the service
// created: what changed, one problem a line.
type SchemaError struct {
	Problems []string
}

func (e *SchemaError) Error() string {
	return "the database schema was changed outside auth-server (" + strings.Join(e.Problems, "; ") +
		"); a Casbin tool that uses gorm-adapter without gormadapter.TurnOffAutoMigrate does this;" +
		" run `auth-server migrate` to repair it"
}

// schemaState is what the catalog says about casbin_rule.
type schemaState struct {
	columns  []string // problems with columns
	indexes  []ruleIndex
	triggers []string
	tables   []string
}

func (s schemaState) problems() []string {
	out := append([]string(nil), s.tables...)
	out = append(out, s.columns...)
	for _, ix := range s.indexes {
		out = append(out, ix.String()+" of casbin_rule is missing")
	}
	for _, t := range s.triggers {
		out = append(out, "trigger "+t+" of casbin_rule is missing")
	}
	return out
}

// CheckSchema checks that casbin_rule and the tables its triggers need are
// as the service created them: the width and nullability of its columns,
// its indexes and its triggers. A damaged schema is a *SchemaError naming
// every difference; other errors are the catalog's.
func (d *DB) CheckSchema(ctx context.Context) error {
	st, err := d.inspect(d.gorm.WithContext(ctx))
	if err != nil {
		return err
	}
	if p := st.problems(); len(p) > 0 {
		return &SchemaError{Problems: p}
	}
	return nil
}

// inspect reads the state of casbin_rule from the catalog.
func (d *DB) inspect(g *gorm.DB) (schemaState, error) {
	var st schemaState
	for _, t := range schemaTables[d.dialect] {
		ok, err := d.hasTable(g, t)
		if err != nil {
			return st, err
		}
		if !ok {
			st.tables = append(st.tables, "table "+t+" is missing")
		}
	}
	cols, err := d.ruleColumnInfo(g)
	if err != nil {
		return st, err
	}
	if len(cols) == 0 {
		st.tables = append(st.tables, "table casbin_rule is missing")
		return st, nil
	}
	if _, ok := cols["id"]; !ok {
		st.columns = append(st.columns, "column casbin_rule.id is missing")
	}
	for _, c := range ruleColumns {
		want := columnInfo{typ: fmt.Sprintf("varchar(%d)", c.width), notNull: true}
		got, ok := cols[c.name]
		switch {
		case !ok:
			st.columns = append(st.columns, "column casbin_rule."+c.name+" is missing")
		case got != want:
			st.columns = append(st.columns, fmt.Sprintf("column casbin_rule.%s is %s, want %s", c.name, got, want))
		}
	}
	have, err := d.ruleIndexInfo(g)
	if err != nil {
		return st, err
	}
	for _, ix := range ruleIndexes {
		if !hasIndex(have, ix) {
			st.indexes = append(st.indexes, ix)
		}
	}
	trig, err := d.ruleTriggerNames(g)
	if err != nil {
		return st, err
	}
	for _, t := range ruleTriggers[d.dialect] {
		if !trig[t] {
			st.triggers = append(st.triggers, t)
		}
	}
	return st, nil
}

// columnInfo is a column's type (lower case, without spaces) and
// nullability.
type columnInfo struct {
	typ     string
	notNull bool
}

func (c columnInfo) String() string {
	if c.notNull {
		return c.typ + " NOT NULL"
	}
	return c.typ + " NULL"
}

func (d *DB) hasTable(g *gorm.DB, name string) (bool, error) {
	var n int64
	var err error
	if d.dialect == SQLite {
		err = g.Raw("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&n).Error
	} else {
		err = g.Raw("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?", name).Scan(&n).Error
	}
	if err != nil {
		return false, fmt.Errorf("read schema: %w", err)
	}
	return n > 0, nil
}

func (d *DB) ruleColumnInfo(g *gorm.DB) (map[string]columnInfo, error) {
	out := map[string]columnInfo{}
	if d.dialect == SQLite {
		var rows []struct {
			Name    string `gorm:"column:name"`
			Type    string `gorm:"column:type"`
			NotNull int    `gorm:"column:notnull"`
		}
		if err := g.Raw("SELECT name, type, \"notnull\" FROM pragma_table_info('casbin_rule')").Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("read schema of casbin_rule: %w", err)
		}
		for _, r := range rows {
			out[strings.ToLower(r.Name)] = columnInfo{typ: strings.ToLower(strings.ReplaceAll(r.Type, " ", "")), notNull: r.NotNull != 0}
		}
		return out, nil
	}
	var rows []struct {
		Name     string `gorm:"column:column_name"`
		Type     string `gorm:"column:data_type"`
		Length   *int   `gorm:"column:character_maximum_length"`
		Nullable string `gorm:"column:is_nullable"`
	}
	if err := g.Raw(`SELECT column_name, data_type, character_maximum_length, is_nullable
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'casbin_rule'`).
		Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read schema of casbin_rule: %w", err)
	}
	for _, r := range rows {
		typ := r.Type
		if typ == "character varying" {
			typ = "varchar"
		}
		if r.Length != nil {
			typ = fmt.Sprintf("%s(%d)", typ, *r.Length)
		}
		out[r.Name] = columnInfo{typ: typ, notNull: r.Nullable == "NO"}
	}
	return out, nil
}

// indexInfo is an index as the catalog describes it.
type indexInfo struct {
	name    string
	unique  bool
	columns string // comma-separated, in order
}

func hasIndex(have []indexInfo, want ruleIndex) bool {
	cols := strings.Join(want.columns, ",")
	for _, h := range have {
		if h.unique == want.unique && h.columns == cols {
			return true
		}
	}
	return false
}

func (d *DB) ruleIndexInfo(g *gorm.DB) ([]indexInfo, error) {
	var out []indexInfo
	if d.dialect == SQLite {
		var list []struct {
			Name   string `gorm:"column:name"`
			Unique int    `gorm:"column:unique"`
		}
		if err := g.Raw("SELECT name, \"unique\" FROM pragma_index_list('casbin_rule')").Scan(&list).Error; err != nil {
			return nil, fmt.Errorf("read indexes of casbin_rule: %w", err)
		}
		for _, ix := range list {
			var cols []string
			if err := g.Raw("SELECT name FROM pragma_index_info(?) ORDER BY seqno", ix.Name).Scan(&cols).Error; err != nil {
				return nil, fmt.Errorf("read index %s: %w", ix.Name, err)
			}
			out = append(out, indexInfo{name: ix.Name, unique: ix.Unique != 0, columns: strings.ToLower(strings.Join(cols, ","))})
		}
		return out, nil
	}
	var rows []struct {
		Name    string `gorm:"column:name"`
		Unique  bool   `gorm:"column:indisunique"`
		Columns string `gorm:"column:cols"`
	}
	if err := g.Raw(`SELECT i.relname AS name, ix.indisunique,
		  array_to_string(ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
		    JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord), ',') AS cols
		FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
		WHERE ix.indrelid = to_regclass('casbin_rule') AND ix.indisvalid AND ix.indpred IS NULL`).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read indexes of casbin_rule: %w", err)
	}
	for _, r := range rows {
		out = append(out, indexInfo{name: r.Name, unique: r.Unique, columns: r.Columns})
	}
	return out, nil
}

func (d *DB) ruleTriggerNames(g *gorm.DB) (map[string]bool, error) {
	var names []string
	var err error
	if d.dialect == SQLite {
		err = g.Raw("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'casbin_rule'").Scan(&names).Error
	} else {
		// A disabled trigger counts as missing.
		err = g.Raw(`SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('casbin_rule')
			AND NOT tgisinternal AND tgenabled <> 'D'`).Scan(&names).Error
	}
	if err != nil {
		return nil, fmt.Errorf("read triggers of casbin_rule: %w", err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// repair brings casbin_rule back to the service's schema inside tx: the
// width, default and nullability of its columns (a table rebuild on
// SQLite, ALTER COLUMN on PostgreSQL), its indexes and its triggers,
// keeping every rule (rows that only differ by NULL and the empty string are one rule:
// the duplicates are merged). It returns what it repaired.
func (d *DB) repair(tx *gorm.DB) ([]string, error) {
	st, err := d.inspect(tx)
	if err != nil {
		return nil, err
	}
	problems := st.problems()
	if len(problems) == 0 {
		return nil, nil
	}
	if len(st.tables) > 0 {
		// A missing table is not a tool's doing: nothing here recreates it.
		return nil, &SchemaError{Problems: st.tables}
	}
	// No trigger fires while the rules are repaired: they do not change.
	for _, t := range ruleTriggers[d.dialect] {
		if err := tx.Exec("DROP TRIGGER IF EXISTS " + t + d.onRules()).Error; err != nil {
			return nil, fmt.Errorf("drop trigger %s: %w", t, err)
		}
	}
	uniqueMissing := false
	for _, ix := range st.indexes {
		uniqueMissing = uniqueMissing || ix.unique
	}
	if len(st.columns) > 0 || uniqueMissing {
		n, err := mergeDuplicateRules(tx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("%d duplicate rule row(s) merged", n))
		}
	}
	if len(st.columns) > 0 {
		if err := d.restoreRuleColumns(tx); err != nil {
			return nil, err
		}
	}
	have, err := d.ruleIndexInfo(tx)
	if err != nil {
		return nil, err
	}
	for _, ix := range ruleIndexes {
		if hasIndex(have, ix) {
			continue
		}
		for _, h := range have {
			if h.name == ix.name { // same name, other shape
				if err := tx.Exec("DROP INDEX " + ix.name).Error; err != nil {
					return nil, fmt.Errorf("drop index %s: %w", ix.name, err)
				}
			}
		}
		if err := tx.Exec(ix.create()).Error; err != nil {
			return nil, fmt.Errorf("create %s: %w", ix, err)
		}
	}
	if err := d.createRuleTriggers(tx); err != nil {
		return nil, err
	}
	if st, err = d.inspect(tx); err != nil {
		return nil, err
	}
	if p := st.problems(); len(p) > 0 {
		return nil, fmt.Errorf("repair left the schema damaged: %w", &SchemaError{Problems: p})
	}
	return problems, nil
}

// onRules is the ON clause of DROP TRIGGER (PostgreSQL names a trigger
// within its table).
func (d *DB) onRules() string {
	if d.dialect == Postgres {
		return " ON " + ruleTable
	}
	return ""
}

// mergeDuplicateRules turns NULL fields into empty strings and deletes the rows that
// then repeat an older row, and returns how many it deleted.
func mergeDuplicateRules(tx *gorm.DB) (int64, error) {
	var set, null []string
	for _, c := range ruleColumns {
		set = append(set, fmt.Sprintf("%[1]s = COALESCE(%[1]s, '')", c.name))
		null = append(null, c.name+" IS NULL")
	}
	if err := tx.Exec("UPDATE casbin_rule SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(null, " OR ")).Error; err != nil {
		return 0, fmt.Errorf("fill NULL rule fields: %w", err)
	}
	res := tx.Exec(`DELETE FROM casbin_rule WHERE id NOT IN
		(SELECT MIN(id) FROM casbin_rule GROUP BY ptype, v0, v1, v2, v3, v4, v5)`)
	if res.Error != nil {
		return 0, fmt.Errorf("merge duplicate rules: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// restoreRuleColumns gives the columns of casbin_rule their width, default
// and NOT NULL again (their values hold no NULL any more).
func (d *DB) restoreRuleColumns(tx *gorm.DB) error {
	if d.dialect == Postgres {
		var alter []string
		for _, c := range ruleColumns {
			alter = append(alter, fmt.Sprintf("ALTER COLUMN %[1]s TYPE VARCHAR(%[2]d), ALTER COLUMN %[1]s SET DEFAULT '', ALTER COLUMN %[1]s SET NOT NULL", c.name, c.width))
		}
		if err := tx.Exec("ALTER TABLE casbin_rule " + strings.Join(alter, ", ")).Error; err != nil {
			return fmt.Errorf("restore the columns of casbin_rule: %w", err)
		}
		return nil
	}
	// SQLite cannot alter a column: build the table anew, copy every row
	// (ids kept), and put it in the old one's place. The indexes and
	// triggers of the old table go with it; the caller creates them.
	var defs, names []string
	for _, c := range ruleColumns {
		defs = append(defs, fmt.Sprintf("%s VARCHAR(%d) NOT NULL DEFAULT ''", c.name, c.width))
		names = append(names, c.name)
	}
	cols := strings.Join(names, ", ")
	stmts := []string{
		"DROP TABLE IF EXISTS casbin_rule_rebuild",
		"CREATE TABLE casbin_rule_rebuild (id INTEGER PRIMARY KEY AUTOINCREMENT, " + strings.Join(defs, ", ") + ")",
		"INSERT INTO casbin_rule_rebuild (id, " + cols + ") SELECT id, " + cols + " FROM casbin_rule ORDER BY id",
		"DROP TABLE casbin_rule",
		"ALTER TABLE casbin_rule_rebuild RENAME TO casbin_rule",
	}
	for _, s := range stmts {
		if err := tx.Exec(s).Error; err != nil {
			return fmt.Errorf("rebuild casbin_rule: %w", err)
		}
	}
	return nil
}

// ErrSchemaDamaged matches every *SchemaError.
var ErrSchemaDamaged = errors.New("database schema damaged")

// Is makes errors.Is(err, ErrSchemaDamaged) true for a *SchemaError.
func (e *SchemaError) Is(target error) bool { return target == ErrSchemaDamaged }

// InOwnTxContext is InTxContext for a transaction of the service that
// writes casbin_rule: the rule triggers, which note the changes made by
// other programs, leave its writes alone (the service bumps the policy
// version and records the change itself). On PostgreSQL the transaction
// sets auth.own_write; on SQLite it holds a row of casbin_rule_own_write
// until just before it commits (SQLite has one writer at a time, and no
// other connection ever sees the row).
func (d *DB) InOwnTxContext(ctx context.Context, fn func(ctx context.Context, tx *gorm.DB) error) error {
	return d.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		if d.dialect == Postgres {
			if err := tx.Exec("SELECT set_config('auth.own_write', 'on', true)").Error; err != nil {
				return fmt.Errorf("mark the transaction as the service's: %w", err)
			}
			return fn(ctx, tx)
		}
		if err := tx.Exec("INSERT INTO casbin_rule_own_write (marker) VALUES (1)").Error; err != nil {
			return fmt.Errorf("mark the transaction as the service's: %w", err)
		}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM casbin_rule_own_write").Error; err != nil {
			return fmt.Errorf("unmark the transaction: %w", err)
		}
		return nil
	})
}

// InOwnTx is InOwnTxContext without the context-carried transaction.
func (d *DB) InOwnTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return d.InOwnTxContext(ctx, func(_ context.Context, tx *gorm.DB) error { return fn(tx) })
}
