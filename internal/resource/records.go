package resource

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
)

// Per-service records. A zone's summary of what it offers and a mesh's VIP
// assignments are kept one record per service, so that a new service costs
// one small record on every hop and no stored value grows with the number
// of services:
//
//   - a zone's ZoneIngress named after the zone carries its ingress address
//     and no services (older zones list every service in it);
//   - each (mesh, tag set, port) the zone offers is a ZoneIngress of its
//     own, named ZoneServiceName, carrying the zone, the ingress address
//     and that one available service;
//   - each service's VIPs are a VIPTable of their own in the service's mesh,
//     named VIPRecordName, holding that one entry (older globals keep every
//     entry of a mesh in one VIPTable named VIPTableName).
//
// Names are hashes because service names and tags need not be valid
// resource names; the zone is in the service record's hash, so records of
// different zones never share a name.

// ZoneServiceName is the name of zone's record of the instances it offers
// of one (mesh, tag set, port).
func ZoneServiceName(zone, mesh string, tags map[string]string, port uint32) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:%s%d:%s%s%d", len(zone), zone, len(mesh), mesh, TagKey(tags), port)
	return fmt.Sprintf("zs-%016x", h.Sum64())
}

// VIPRecordName is the name of a service's VIP record in its mesh.
func VIPRecordName(service string) string {
	h := fnv.New64a()
	h.Write([]byte(service))
	return fmt.Sprintf("vip-%016x", h.Sum64())
}

// TagKey is a canonical encoding of a tag set: equal sets, equal keys.
func TagKey(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		// Length-prefixed: no key or value can pass for another's.
		b = strconv.AppendInt(b, int64(len(k)), 10)
		b = append(b, ':')
		b = append(b, k...)
		b = strconv.AppendInt(b, int64(len(tags[k])), 10)
		b = append(b, ':')
		b = append(b, tags[k]...)
	}
	return string(b)
}

// CheckZoneName is CheckName for a zone: a zone's ZoneIngress is named
// after it, beside the per-service records of every zone, so a zone may
// not take a name of their form ("zs-" and 16 hex digits).
func CheckZoneName(name string) string {
	if msg := CheckName(name); msg != "" {
		return msg
	}
	if rest, ok := strings.CutPrefix(name, "zs-"); ok && len(rest) == 16 && strings.Trim(rest, "0123456789abcdef") == "" {
		return fmt.Sprintf("%q has the form of a per-service record's name (zs- and 16 hex digits), which zones may not take: choose another", name)
	}
	return ""
}
