package xdsrelay

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message relayed as it came off the wire, never
// decoded: the relay forwards any method Envoy opens, whatever its types.
type frame struct {
	data mem.BufferSlice
}

// passThrough is a gRPC codec for frames. Unmarshal keeps a reference to
// the received buffers and Marshal hands that reference on to the sending
// side, which frees it once written, so a message is not copied on its
// way through the relay.
type passThrough struct{}

var _ encoding.CodecV2 = passThrough{}

func (passThrough) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("xds relay codec: cannot marshal %T", v)
	}
	out := f.data
	f.data = nil // the reference now belongs to gRPC
	return out, nil
}

func (passThrough) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("xds relay codec: cannot unmarshal into %T", v)
	}
	data.Ref() // gRPC frees data when Unmarshal returns
	f.data = data
	return nil
}

// Name is the content-subtype the relay announces upstream: the bytes are
// protobuf, as Envoy sent them.
func (passThrough) Name() string { return "proto" }
