package policydb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"gorm.io/gorm/clause"
)

// replicaScopeName is the setting that names the database for replica
// sync: replicas exchange changes only with replicas of the same scope.
const replicaScopeName = "replica_scope"

// ReplicaScope returns the database's replica scope, a random name made
// the first time it is asked for and kept in the settings table, so that
// every replica of one database reads the same one and replicas of
// different databases never do.
func (s *Store) ReplicaScope(ctx context.Context) (string, error) {
	if v, ok, err := s.setting(ctx, replicaScopeName); err != nil || ok {
		return v, err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	// Two replicas starting together: the first insert wins, both read it.
	if err := s.db.Gorm().WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&settingRow{Name: replicaScopeName, Value: hex.EncodeToString(b[:])}).Error; err != nil {
		return "", fmt.Errorf("write setting %s: %w", replicaScopeName, err)
	}
	v, ok, err := s.setting(ctx, replicaScopeName)
	if err == nil && !ok {
		err = errors.New("replica scope setting vanished")
	}
	return v, err
}
