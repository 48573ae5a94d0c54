package policy

import "context"

// coldRead returns, for a read, the loaded state of a tenant that is not
// in memory, or nil if the database has no such tenant. The tenant is
// found and read by one store call (Store.LoadTenant) under a placeholder
// that concurrent requests for the same key wait on, so that they share
// its load, lookup included. A tenant that does not exist is not kept:
// the placeholder is dropped, and the requests that waited on it learn
// from it that the tenant does not exist without asking again.
func (s *Service) coldRead(ctx context.Context, key KeyHash) (*tenant, error) {
	for {
		s.mu.Lock()
		t := s.tenants[key]
		if t == nil {
			t = &tenant{key: key}
			s.addLocked(t)
		}
		s.mu.Unlock()
		if err := lockTenant(ctx, t); err != nil {
			return nil, err
		}
		t.mu.RLock()
		loaded, id := t.loaded, t.id
		t.mu.RUnlock()
		s.mu.RLock()
		current := s.tenants[key] == t
		s.mu.RUnlock()
		switch {
		case loaded && (current || id != 0):
			// Loaded meanwhile (an evicted state is still answered from,
			// as a read that began before the eviction would be).
			t.writeMu.unlock()
			t.touch(s.now())
			return t, nil
		case loaded:
			// The load waited on found no tenant.
			t.writeMu.unlock()
			return nil, nil
		case !current:
			// Dropped after a failed load: start again.
			t.writeMu.unlock()
			continue
		}
		err := s.loadTenant(ctx, t)
		t.mu.RLock()
		missing := t.loaded && t.id == 0
		t.mu.RUnlock()
		if err != nil || missing {
			s.mu.Lock()
			if s.tenants[key] == t {
				s.dropLocked(key, t)
			}
			s.mu.Unlock()
		}
		t.writeMu.unlock()
		if err != nil || missing {
			return nil, err
		}
		t.touch(s.now())
		return t, nil
	}
}
