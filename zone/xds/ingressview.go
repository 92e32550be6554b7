package xds

import (
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// keyLeftOut stands for the ingress's private key in the configuration the
// API shows.
const keyLeftOut = "(left out: the ingress's private key stays in the zone's data dir, ingress-tls)"

// IngressConfigHandler serves GET /zoneingresses/{name}/xds/config: the
// configuration this zone's ingress proxy gets, as ConfigHandler renders a
// Dataplane's, built from the zone's current Dataplanes, with the private
// key of its certificate left out.
func (s *Server) IngressConfigHandler(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("name"); name != s.cfg.Zone {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf(
			"this is zone %s: ask zone %s's own API for its ingress's configuration", s.cfg.Zone, name)})
		return
	}
	s.mu.Lock()
	dps := s.dps
	s.mu.Unlock()
	var all []*resource.Resource
	if dps != nil {
		all = dps.List(resource.DataplaneType, "")
	} else {
		var err error
		if all, err = s.cfg.Store.List(r.Context(), resource.DataplaneType, ""); err != nil {
			apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
	}
	res, err := GenerateIngress(IngressInput{Zone: s.cfg.Zone, Address: s.cfg.Ingress.Address, Port: s.cfg.Ingress.Port,
		Dataplanes: all, CertPEM: s.cfg.Ingress.CertPEM})
	if err == nil {
		err = leaveKeyOut(res, s.cfg.Ingress.CertPEM)
	}
	if err == nil {
		var body []byte
		if body, err = Render(res); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return
		}
	}
	apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

// leaveKeyOut replaces, in copies of res's listeners, the TLS context of
// every filter chain with one whose private key says it is left out.
func leaveKeyOut(res Resources, certPEM []byte) error {
	tls, err := typed(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: keyLeftOut}},
		}},
	}})
	if err != nil {
		return err
	}
	for i, r := range res[typeLDS] {
		l := proto.Clone(r).(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			if fc.GetTransportSocket() != nil {
				fc.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: tls}
			}
		}
		res[typeLDS][i] = l
	}
	return nil
}
