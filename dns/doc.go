// Package dns is the zone's embedded DNS server for .mesh names: it answers
// <service>.mesh (and <name>.<namespace>.svc.<port>.mesh for Kubernetes
// services) with the service's virtual IP, identical in every zone. It is
// built with the DNS issue; until then the zone serves no DNS.
package dns
