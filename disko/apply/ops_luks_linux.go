package apply

import (
	"fmt"
	"os"
	"strings"

	"github.com/nivis/nivis/disko"
)

// luksFormat formats a LUKS container unless one is there.
func (x *executor) luksFormat(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	if sig, err := probeNode(node); err != nil {
		return "", err
	} else if sig != nil {
		if sig.Type == "crypto_LUKS" {
			return "already a LUKS container", nil
		}
		return "", fmt.Errorf("%s holds %s, not LUKS: format does not overwrite it; use mode destroy,format,mount to start over", node, sig)
	}
	key, err := x.key(op.Key)
	if err != nil {
		return "", err
	}
	if err := x.run(op.ToolArgv(node), key, nil); err != nil {
		return "", err
	}
	x.luksFormatted[op.Name] = true
	return "", nil
}

// luksOpen opens the container unless it is open.
func (x *executor) luksOpen(op *disko.Op) (string, error) {
	if x.dmExists(op.Name) {
		return "/dev/mapper/" + op.Name + " is open", nil
	}
	return x.runWithKey(op)
}

// luksAddKey adds the extra keys to containers this run formatted.
func (x *executor) luksAddKey(op *disko.Op) (string, error) {
	if !x.luksFormatted[op.Name] {
		return "the container existed before this run", nil
	}
	return x.runWithKey(op)
}

// luksClose closes the container if it is open.
func (x *executor) luksClose(op *disko.Op) (string, error) {
	if !x.dmExists(op.Name) {
		return "not open", nil
	}
	return "", x.run(op.ToolArgv(""), nil, nil)
}

// key returns what goes on cryptsetup's stdin, if anything.
func (x *executor) key(k *disko.KeySpec) ([]byte, error) {
	switch {
	case k == nil || k.KeyFile != "":
		return nil, nil
	case k.PasswordFile != "":
		b, err := os.ReadFile(k.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read LUKS password file: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\n")), nil
	case k.AskPassword:
		if x.o.Password == "" {
			return nil, fmt.Errorf("this LUKS container needs a password (askPassword): give it with --password-file or set passwordFile or settings.keyFile")
		}
		return []byte(x.o.Password.Reveal()), nil
	}
	return nil, nil
}

func (x *executor) dmExists(name string) bool {
	_ = x.res.refresh()
	for _, b := range x.res.devs {
		if b.DMName == name {
			return true
		}
	}
	return false
}

// runWithKey runs the op's cryptsetup command on its device with the key
// on stdin.
func (x *executor) runWithKey(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	key, err := x.key(op.Key)
	if err != nil {
		return "", err
	}
	return "", x.run(op.ToolArgv(node), key, nil)
}
