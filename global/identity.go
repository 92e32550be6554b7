package global

import (
	"context"
	"crypto/rand"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// clusterIDKey holds, under the etcd prefix, the identity of the state
// this global serves. Zones remember it: a global that comes up on an
// empty or wrong etcd (or prefix) has another one, and zones refuse to
// remove what they hold on its word.
const clusterIDKey = "cluster-id"

// loadClusterID returns the cluster identity stored under prefix, creating
// it if absent in one transaction, so replicas starting together agree.
func loadClusterID(ctx context.Context, client *clientv3.Client, prefix string) (string, error) {
	key := prefix + clusterIDKey
	id := newClusterID()
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, id)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("reading the cluster identity %s from etcd: %w", key, err)
	}
	if resp.Succeeded {
		return id, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 || len(kvs[0].Value) == 0 || len(kvs[0].Value) > 64 {
		return "", fmt.Errorf("etcd key %s does not hold a cluster identity: restore it from a backup, or delete it to make a new one (zones then refuse this global's removals until accepted)", key)
	}
	return string(kvs[0].Value), nil
}

// newClusterID is a random identity in the UUID (version 4) format.
func newClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
