package dns

// FastAnswer exposes the fast path to the package's external tests.
func (s *Server) FastAnswer(req []byte) ([]byte, int) { return s.fastAnswer(req, nil) }

// FastAnswerInto is the fast path answering into out, as the read loop does.
func (s *Server) FastAnswerInto(req, out []byte) ([]byte, int) { return s.fastAnswer(req, out) }
