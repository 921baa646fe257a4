package server

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// jobSocket streams job events over a WebSocket (one JSON text message per
// event, the same objects as the SSE stream): /mica/v1/ws for every job,
// /mica/v1/jobs/{id}/ws for one. Messages from the client are ignored;
// pings keep idle connections open through proxies.
func (s *Server) jobSocket(w http.ResponseWriter, r *http.Request) {
	ch, stop, ok := s.subscribe(w, r)
	if !ok {
		return
	}
	defer stop()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept wrote the error
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context()) // the client's messages are not used
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				c.Close(websocket.StatusNormalClosure, "job ended")
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, marshal(eventJSON(e)))
			cancel()
			if err != nil {
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
