// Package zoneauth issues and checks the tokens zones present on every KDS
// stream, so that only a zone the global's operator admitted can sync, and
// only as the zone its token names.
//
// A zone token is a JWT signed with Ed25519 (EdDSA) whose subject is the
// zone's name. The signing keys live in etcd, so every global replica
// verifies the tokens any replica issued. Keys rotate: a new key signs from
// then on, older keys keep verifying until they are retired.
//
// Revocation is per zone: each zone has a generation, written in the tokens
// issued for it. Revoking bumps the generation, which invalidates every token
// issued before, and every replica cuts that zone's live streams admitted
// with an older generation as soon as its etcd watch sees the change.
// Deleting a zone revokes its tokens, so a deleted zone cannot come back by
// reconnecting.
//
// Layout under the configured prefix:
//
//	keys/<id>    a signing key (JSON: id, created, Ed25519 seed)
//	signer       the id of the key that signs new tokens
//	zones/<zone> the zone's generation and when it was last revoked
//
// Usage:
//
//	a := zoneauth.New(zoneauth.Config{Client: etcd, Prefix: "/atoll/zone-auth/", Registry: reg, Log: log})
//	if err := a.Start(ctx); err != nil { ... } // loads state, creates the first key
//	go a.Run(ctx)                               // follows revocations and key retirements
//	kds.NewServer(kds.ServerConfig{Auth: a, ...})
//	a.Register(mux)                             // the token and key endpoints
package zoneauth
