// Package lru is a size-bounded map that evicts the least recently used entry. Caches and limiters keyed by
// client-supplied names use it so that a stream of unique names cannot grow memory without limit.
package lru

import "container/list"

// Cache maps keys to values, holding at most Max entries. It is not safe for concurrent use: its owners already
// hold a lock around it.
type Cache[K comparable, V any] struct {
	max   int
	order *list.List // front: most recently used
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns a cache of at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), order: list.New(), items: make(map[K]*list.Element)}
}

// Get returns the value of k and marks it used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Add stores v under k, marks it used, and evicts the least recently used entry if the cache is over its size.
func (c *Cache[K, V]) Add(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*entry[K, V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&entry[K, V]{k, v})
	for len(c.items) > c.max {
		c.RemoveOldest()
	}
}

// Oldest returns the least recently used entry.
func (c *Cache[K, V]) Oldest() (K, V, bool) {
	if e := c.order.Back(); e != nil {
		en := e.Value.(*entry[K, V])
		return en.key, en.val, true
	}
	var k K
	var v V
	return k, v, false
}

// RemoveOldest drops the least recently used entry.
func (c *Cache[K, V]) RemoveOldest() {
	if e := c.order.Back(); e != nil {
		c.order.Remove(e)
		delete(c.items, e.Value.(*entry[K, V]).key)
	}
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.items) }

// Max is the most entries the cache holds.
func (c *Cache[K, V]) Max() int { return c.max }
