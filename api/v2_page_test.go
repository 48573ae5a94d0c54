package api

import (
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func pageContext(query string) echo.Context {
	return echo.New().NewContext(httptest.NewRequest("GET", "/api/v2/roles?"+query, nil), httptest.NewRecorder())
}

func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		query  string
		want   pageRequest
		reason string
	}{
		{"", pageRequest{limit: DefaultPageLimit}, ""},
		{"limit=1", pageRequest{limit: 1}, ""},
		{"limit=1000", pageRequest{limit: 1000}, ""},
		{"limit=0", pageRequest{}, ReasonInvalidParameter},
		{"limit=1001", pageRequest{}, ReasonInvalidParameter},
		{"limit=-3", pageRequest{}, ReasonInvalidParameter},
		{"limit=ten", pageRequest{}, ReasonInvalidParameter},
		{"cursor=" + encodeCursor("bob"), pageRequest{limit: DefaultPageLimit, after: "bob"}, ""},
		{"cursor=" + encodeCursor("") + "&limit=5", pageRequest{limit: 5, after: ""}, ""},
		{"cursor=YWJj", pageRequest{}, ReasonInvalidCursor}, // "abc": not ours
		{"cursor=%25%25", pageRequest{}, ReasonInvalidCursor},
		{"cursor=" + strings.TrimRight(encodeCursor("bob"), "=") + "!", pageRequest{}, ReasonInvalidCursor},
	} {
		got, err := parsePage(pageContext(tc.query))
		if tc.reason != "" {
			var ve *v2Error
			if !errors.As(err, &ve) || ve.reason != tc.reason || ve.code != 400 {
				t.Errorf("parsePage(%q) = %+v, %v; want 400 %s", tc.query, got, err, tc.reason)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parsePage(%q) = %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

func TestPaginate(t *testing.T) {
	id := func(s string) string { return s }
	first := func(limit int) pageRequest { return pageRequest{limit: limit} }
	after := func(key string, limit int) pageRequest { return pageRequest{limit: limit, after: key} }
	for _, tc := range []struct {
		name  string
		items []string
		p     pageRequest
		want  []string
		next  string // "" for none
	}{
		{"empty", nil, first(10), []string{}, ""},
		{"one page", []string{"b", "a", "c"}, first(10), []string{"a", "b", "c"}, ""},
		{"exact fit", []string{"b", "a"}, first(2), []string{"a", "b"}, ""},
		{"first of two", []string{"c", "a", "b"}, first(2), []string{"a", "b"}, "b"},
		{"second of two", []string{"c", "a", "b"}, after("b", 2), []string{"c"}, ""},
		{"duplicates once", []string{"a", "b", "a", "b", "c"}, first(2), []string{"a", "b"}, "b"},
		{"after a removed key", []string{"a", "c", "d"}, after("b", 1), []string{"c"}, "c"},
		{"after the last", []string{"a", "b"}, after("b", 5), []string{}, ""},
		{"after past everything", []string{"a", "b"}, after("z", 5), []string{}, ""},
		{"empty-key cursor", []string{"", "a"}, after("", 5), []string{"a"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := paginate(append([]string(nil), tc.items...), id, tc.p)
			if !reflect.DeepEqual(got.Items, tc.want) {
				t.Errorf("items %q, want %q", got.Items, tc.want)
			}
			switch {
			case tc.next == "" && got.NextCursor != nil:
				t.Errorf("next_cursor %q, want null", *got.NextCursor)
			case tc.next != "" && (got.NextCursor == nil || *got.NextCursor != encodeCursor(tc.next)):
				t.Errorf("next_cursor %v, want the cursor after %q", got.NextCursor, tc.next)
			}
		})
	}
}

// Walking every page with any limit yields every item once, in order.
func TestPaginateWalk(t *testing.T) {
	items := []string{"k", "a", "x", "c", "a", "m", "b", "z", "q"}
	want := []string{"a", "b", "c", "k", "m", "q", "x", "z"}
	for limit := 1; limit <= len(items)+1; limit++ {
		var got []string
		p := pageRequest{limit: limit}
		for pages := 0; ; pages++ {
			if pages > len(items) {
				t.Fatalf("limit %d: the cursor does not end", limit)
			}
			pg := paginate(append([]string(nil), items...), func(s string) string { return s }, p)
			got = append(got, pg.Items...)
			if pg.NextCursor == nil {
				break
			}
			var err error
			if p, err = parsePage(pageContext("cursor=" + *pg.NextCursor)); err != nil {
				t.Fatal(err)
			}
			p.limit = limit
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: walked %q, want %q", limit, got, want)
		}
	}
}
