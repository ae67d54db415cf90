package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// Entries written by an earlier version ({P}:e: value, {P}:m: tag list,
// {P}:t: tag sets) still load, list, and delete, alone and by tag, next
// to entries of the current layout; a Set moves an entry to the current
// layout and out of its old tag sets.
func TestOldLayout(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	do := func(cmd rueidis.Completed) rueidis.RedisResult {
		t.Helper()
		r := admin.Do(ctx, cmd)
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			t.Fatal(err)
		}
		return r
	}
	// plant writes key as the earlier version's Set did.
	plant := func(key, value string, tags ...string) {
		t.Helper()
		do(admin.B().Set().Key("{old}:e:" + key).Value(value).PxMilliseconds(time.Hour.Milliseconds()).Build())
		for _, tag := range tags {
			do(admin.B().Sadd().Key("{old}:m:" + key).Member(tag).Build())
			do(admin.B().Sadd().Key("{old}:t:" + tag).Member(key).Build())
			do(admin.B().Pexpire().Key("{old}:t:" + tag).Milliseconds(time.Hour.Milliseconds()).Build())
		}
		do(admin.B().Pexpire().Key("{old}:m:" + key).Milliseconds(time.Hour.Milliseconds()).Build())
	}
	exists := func(k string) bool {
		t.Helper()
		n, err := do(admin.B().Exists().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	inSet := func(set, member string) bool {
		t.Helper()
		n, err := do(admin.B().Sismember().Key(set).Member(member).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	s := newStore(t, srv.URL, redisstore.Options{Prefix: "old:"})
	tagged := func(tag string) []string {
		t.Helper()
		keys, err := s.Tagged(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		return keys
	}

	plant("a", "value-a", "sub:x", "sid:1")
	plant("b", "value-b", "sub:x", "sid:2")
	plant("c", "value-c", "sub:y", "sid:3")
	must(t, s.Set(ctx, "n", []byte("value-n"), time.Hour, "sub:x"))

	for _, k := range []string{"a", "b", "c", "n"} {
		if got, err := s.Get(ctx, k); err != nil || string(got) != "value-"+k {
			t.Errorf("Get %s: got %q %v, want value-%s", k, got, err, k)
		}
	}
	if got, want := tagged("sub:x"), []string{"a", "b", "n"}; !slices.Equal(got, want) {
		t.Errorf("Tagged sub:x: got %q, want %q", got, want)
	}

	// A Set moves a into the current layout, under its new tags only.
	must(t, s.Set(ctx, "a", []byte("value-a2"), time.Hour, "sub:x", "sid:9"))
	if exists("{old}:e:a") || exists("{old}:m:a") || inSet("{old}:t:sid:1", "a") || inSet("{old}:t:sub:x", "a") {
		t.Error("after Set, a is still in the old layout")
	}
	if got, err := s.Get(ctx, "a"); err != nil || string(got) != "value-a2" {
		t.Errorf("Get a after Set: got %q %v, want value-a2", got, err)
	}
	if got := tagged("sid:1"); len(got) != 0 {
		t.Errorf("Tagged sid:1 after a moved to sid:9: got %q, want none", got)
	}
	if got, want := tagged("sid:9"), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("Tagged sid:9: got %q, want %q", got, want)
	}

	// Delete of an old entry removes it from its tag sets.
	must(t, s.Delete(ctx, "c"))
	if exists("{old}:e:c") || exists("{old}:m:c") || inSet("{old}:t:sub:y", "c") {
		t.Error("after Delete, c is still in the old layout")
	}

	// DeleteTagged takes entries of both layouts, and their other
	// memberships.
	must(t, s.DeleteTagged(ctx, "sub:x"))
	for _, k := range []string{"a", "b", "n"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Get %s after DeleteTagged: %v, want ErrNotFound", k, err)
		}
	}
	if exists("{old}:m:b") || inSet("{old}:t:sid:2", "b") || exists("{old}:t:sub:x") || exists("{old}:i:sub:x") {
		t.Error("after DeleteTagged, an index of b or of sub:x remains")
	}
	if got := tagged("sid:9"); len(got) != 0 {
		t.Errorf("Tagged sid:9 after DeleteTagged sub:x: got %q, want none", got)
	}
}

// An entry whose tags do not parse is an error, not a miss and not a
// value.
func TestMalformedEntry(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	s := newStore(t, srv.URL, redisstore.Options{Prefix: "bad:"})
	for _, v := range []string{"", "\x01", "\x01\x00\x05abc", "\x02\x00\x01a"} {
		if err := admin.Do(ctx, admin.B().Set().Key("{bad}:v:k").Value(v).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "k")
		if err == nil || errors.Is(err, session.ErrNotFound) {
			t.Errorf("entry %q: got %q %v, want an error", v, got, err)
		}
	}
}
