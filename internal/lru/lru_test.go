package lru

import (
	"strconv"
	"testing"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	if _, ok := c.Get("a"); !ok { // a is now newer than b
		t.Fatal("a missing")
	}
	c.Add("c", 3)
	if _, ok := c.Get("b"); ok {
		t.Error("b should have been evicted")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if k, _, _ := c.Oldest(); k != "a" {
		t.Errorf("oldest = %q, want a", k)
	}
}

func TestCacheStaysBounded(t *testing.T) {
	c := New[string, int](1000)
	for i := range 100_000 {
		c.Add(strconv.Itoa(i), i)
		if c.Len() > 1000 {
			t.Fatalf("len %d after %d adds", c.Len(), i+1)
		}
	}
	if v, ok := c.Get("99999"); !ok || v != 99999 {
		t.Errorf("newest entry = %d, %v", v, ok)
	}
}
