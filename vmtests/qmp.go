//go:build linux

package vmtests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// QMP sends one command to the VM's QEMU Machine Protocol socket and
// returns its "return" value: system_powerdown, system_reset, quit, ...
func (vm *VM) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", vm.qmpPath)
	if err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	rd := bufio.NewReader(c)
	dec := json.NewDecoder(rd)
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return nil, errors.New("QMP: no greeting")
	}
	if _, err := qmpExecute(c, dec, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return qmpExecute(c, dec, command, args)
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

func qmpExecute(c net.Conn, dec *json.Decoder, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		var r qmpReply
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("QMP %s: %w", command, err)
		}
		if r.Event != "" {
			continue // asynchronous events interleave with replies
		}
		if r.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", command, r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	}
}
