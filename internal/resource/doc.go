// Package resource is atoll's resource model: the meta every stored object
// carries, the registry of resource types (scope, sync direction, where users
// may write them), validation with field-naming errors, and the file format
// that atollctl and the REST APIs read and write.
//
// A resource in the file format:
//
//	type: Dataplane
//	mesh: default
//	name: backend-1
//	networking:
//	  address: 127.0.0.1
//	  inbound:
//	  - port: 9001
//	    tags: {atoll.io/service: backend}
//
// Decode it, validate it against its type, and encode it back:
//
//	r, err := resource.Decode(data)
//	if err != nil { ... }
//	if err := resource.Validate(r); err != nil { ... } // *ValidationError
//	out, err := resource.EncodeJSON(r)
package resource
