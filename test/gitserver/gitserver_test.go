package gitserver

import (
	"crypto/tls"
	"testing"
)

// A client that refuses the server's certificate sends no request, yet its
// connection counts: a test that wants "no contact with the git server"
// sees a TLS handshake attempt too.
func TestConnectionsCountFailedHandshakes(t *testing.T) {
	dir := t.TempDir()
	s, err := StartWithOwnCA(dir, "token", dir, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := tls.Dial("tcp", s.Host, &tls.Config{ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("the handshake succeeded without trusting the server's CA")
	}
	if got := s.Requests(); got != 0 {
		t.Errorf("Requests() = %d after a failed handshake, want 0", got)
	}
	if got := s.Connections(); got != 1 {
		t.Errorf("Connections() = %d after a failed handshake, want 1", got)
	}
}
