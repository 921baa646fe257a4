// Package imagegen turns a generation request into images with a Stable
// Diffusion checkpoint: text conditioning (A1111 prompt syntax, clip skip),
// seeded noise that reproduces A1111's seeds, the sampler loop with
// classifier-free guidance over the UNet, and VAE decoding. txt2img,
// img2img, inpainting and the hires fix are modes of one pipeline.
package imagegen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"mica/internal/compute"
	"mica/internal/diffusion/schedule"
	"mica/internal/models/sd"
	"mica/internal/models/sd/clip"
	"mica/internal/models/sd/unet"
	"mica/internal/models/sd/vae"
	"mica/internal/tensor"
	cliptok "mica/internal/tokenizer/clip"
)

// Checkpoint name prefixes of the single-file (LDM / SGM) layout.
const (
	prefixUNet  = "model.diffusion_model."
	prefixVAE   = "first_stage_model."
	prefixCLIP  = "cond_stage_model.transformer.text_model."
	prefixCLIPL = "conditioner.embedders.0.transformer.text_model."
	prefixBigG  = "conditioner.embedders.1.model."
	// The SDXL refiner's only text encoder, OpenCLIP bigG, is its first
	// embedder (Stability-AI/generative-models sd_xl_refiner.yaml).
	prefixRefinerG = "conditioner.embedders.0.model."
)

// Model is a loaded checkpoint: its text encoders, UNet and VAE on one
// backend, with the tokenizer and noise table that go with them.
type Model struct {
	Name string
	Kind sd.Kind
	path string
	b    compute.Backend
	ckpt *sd.Checkpoint
	src  *sd.Source

	tok   *cliptok.Tokenizer
	clip  *clip.Model // SD 1.x: ViT-L/14; SDXL: CLIP-L; nil for the SDXL refiner
	bigG  *clip.Model // SDXL base and refiner
	unet  *unet.Model
	ucfg  unet.Config
	vae   *vae.Model
	table *schedule.Table

	scale float32 // latent scale factor: 0.18215 (SD 1.x) or 0.13025 (SDXL)

	hashOnce sync.Once
	hash     string
	hashFn   func() string // Options.ShortHash
}

// Options configure loading.
type Options struct {
	// Tokenizer is a CLIP tokenizer file: bpe_simple_vocab_16e6.txt(.gz),
	// or a folder with vocab.json and merges.txt. Empty: the checkpoint's
	// own tokenizer/ folder (diffusers), else TokenizerSearch.
	Tokenizer string
	// TokenizerSearch lists further places to look when the checkpoint
	// brings no tokenizer (the model store's copy).
	TokenizerSearch []string
	// Quantize the UNet's weights at load (tensor.Q8_0 or tensor.Q4_0;
	// zero keeps the file's types).
	Quantize tensor.DType
	// ShortHash, when set, supplies the checkpoint's short hash (a cache
	// that hashes files in the background; "" while unknown) instead of
	// ShortHash reading the whole file on its first call.
	ShortHash func() string
}

// Load opens a checkpoint (single-file .safetensors or a diffusers folder)
// and binds every component; a missing or mis-shaped tensor anywhere is
// reported with all the others in one error.
func Load(b compute.Backend, path string, o Options) (*Model, error) {
	ck, err := sd.Open(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Name: strings.TrimSuffix(filepath.Base(path), ".safetensors"), Kind: ck.Kind, path: path, b: b, ckpt: ck,
		hashFn: o.ShortHash}
	fail := func(err error) (*Model, error) {
		ck.Close()
		return nil, err
	}
	if m.tok, err = loadTokenizer(path, o); err != nil {
		return fail(err)
	}
	switch m.Kind {
	case sd.SD1, sd.SD1Inpaint, sd.SDXL, sd.SDXLInpaint, sd.SDXLRefiner:
	default:
		return fail(fmt.Errorf("%s: %s checkpoints are not supported yet (SD 1.x, SDXL base and refiner are)", path, m.Kind))
	}
	src, err := ck.Source(b, sd.SourceOptions{Quantize: o.Quantize})
	if err != nil {
		return fail(err)
	}
	m.src = src
	xl := m.Kind.IsSDXL()
	m.scale = ck.LatentScale()
	// SD 1.x: CLIP-L; SDXL base: CLIP-L and bigG; the refiner: bigG only.
	textPrefix, bigGPrefix := prefixCLIP, ""
	switch {
	case m.Kind == sd.SDXLRefiner:
		textPrefix, bigGPrefix = "", prefixRefinerG
	case xl:
		textPrefix, bigGPrefix = prefixCLIPL, prefixBigG
	}
	if textPrefix != "" {
		ccfg, err := clip.DetectConfig(src, textPrefix)
		if err != nil {
			return fail(err)
		}
		m.clip, _ = clip.Load(src, textPrefix, ccfg)
	}
	if bigGPrefix != "" {
		gcfg, err := clip.DetectConfig(src, bigGPrefix)
		if err != nil {
			return fail(err)
		}
		m.bigG, _ = clip.Load(src, bigGPrefix, gcfg)
	}
	if m.ucfg, err = unet.DetectConfig(src, prefixUNet, m.Kind.Family()); err != nil {
		return fail(err)
	}
	m.unet, _ = unet.Load(src, prefixUNet, m.ucfg)
	// For SDXL without a separate VAE this is stable-diffusion.cpp's
	// guard against the F16 overflow of the SDXL VAE: every conv input is
	// scaled by 1/32 and its output back.
	m.vae, _ = vae.Load(src, prefixVAE, vae.Options{ConvScale: ck.VAEConvScale()})
	if err := src.Err(); err != nil {
		src.Free()
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if m.table, err = schedule.NewScaledLinear(0.00085, 0.012, 1000); err != nil {
		return fail(err)
	}
	return m, nil
}

// Close releases the weights and the checkpoint's memory map.
func (m *Model) Close() error {
	m.src.Free()
	return m.ckpt.Close()
}

// ShortHash is A1111's short hash of a single-file checkpoint: the first
// ten hex digits of the file's SHA-256 (what its infotext shows in
// brackets, e.g. "Refiner: NAME [hash]"; sd_xl_refiner_1.0's is
// 7440042bbd); "" for a diffusers folder or an
// unreadable file. Without Options.ShortHash the file is read once, on the
// first call.
func (m *Model) ShortHash() string {
	if m.hashFn != nil {
		return m.hashFn()
	}
	m.hashOnce.Do(func() {
		f, err := os.Open(m.path)
		if err != nil {
			return
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || st.IsDir() {
			return
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return
		}
		m.hash = hex.EncodeToString(h.Sum(nil))[:10]
	})
	return m.hash
}

// NativeSize is the model's training resolution (the default size).
func (m *Model) NativeSize() int {
	if m.Kind.IsSDXL() {
		return 1024
	}
	return 512
}

// loadTokenizer finds the CLIP BPE tokenizer: an explicit file or folder,
// the diffusers folder's tokenizer/, or the search paths.
func loadTokenizer(model string, o Options) (*cliptok.Tokenizer, error) {
	try := []string{}
	if o.Tokenizer != "" {
		try = append(try, o.Tokenizer)
	} else {
		if fi, err := os.Stat(model); err == nil && fi.IsDir() {
			// A refiner folder has only tokenizer_2 (the same BPE files).
			try = append(try, filepath.Join(model, "tokenizer"), filepath.Join(model, "tokenizer_2"))
		}
		try = append(try, o.TokenizerSearch...)
	}
	for _, p := range try {
		fi, err := os.Stat(p)
		if err != nil {
			if o.Tokenizer != "" {
				return nil, fmt.Errorf("clip tokenizer %s: %w", p, err)
			}
			continue
		}
		if fi.IsDir() {
			vocab, merges := filepath.Join(p, "vocab.json"), filepath.Join(p, "merges.txt")
			if _, err := os.Stat(vocab); err == nil {
				return loadHF(vocab, merges)
			}
			for _, name := range []string{"bpe_simple_vocab_16e6.txt.gz", "bpe_simple_vocab_16e6.txt"} {
				if _, err := os.Stat(filepath.Join(p, name)); err == nil {
					return cliptok.LoadBPEFile(filepath.Join(p, name))
				}
			}
			continue
		}
		return cliptok.LoadBPEFile(p)
	}
	return nil, fmt.Errorf("%w for %s: single-file checkpoints carry none; give one with --clip-tokenizer (a diffusers tokenizer/ folder with vocab.json and merges.txt, or OpenAI's bpe_simple_vocab_16e6.txt.gz)", ErrNoTokenizer, model)
}

// ErrNoTokenizer: the checkpoint brings no CLIP tokenizer and none was
// found where Options say to look (the caller may fetch one and retry).
var ErrNoTokenizer = errors.New("no CLIP tokenizer found")

// LoadTokenizer reads a CLIP tokenizer: OpenAI's
// bpe_simple_vocab_16e6.txt(.gz), or a folder with a diffusers tokenizer
// (vocab.json and merges.txt).
func LoadTokenizer(path string) (*cliptok.Tokenizer, error) {
	return loadTokenizer("", Options{Tokenizer: path})
}

func loadHF(vocab, merges string) (*cliptok.Tokenizer, error) {
	v, err := os.Open(vocab)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	mg, err := os.Open(merges)
	if err != nil {
		return nil, err
	}
	defer mg.Close()
	return cliptok.LoadHF(v, mg)
}
