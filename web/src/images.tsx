// Image helpers shared by the studio and the gallery: reading dropped or
// pasted files, the inpainting mask brush, and a viewer with zoom and pan.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { apiKey, send } from './api';
import { readDataURL } from './attachments';

export { readDataURL };

export async function urlToDataURL(url: string): Promise<string> {
  return readDataURL(await (await send(url)).blob());
}

// downloadImage saves one of mica's images. It fetches the picture (with
// the API key, which a bare <a href download> could not send) and saves the
// blob under the file's own name.
export async function downloadImage(url: string) {
  const b = await (await send(url)).blob();
  const href = URL.createObjectURL(b);
  const a = document.createElement('a');
  a.href = href;
  a.download = downloadName(url);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
}

// downloadName is the file name to save an image URL under: its last path
// part, or mica.png.
export function downloadName(url: string): string {
  let name = url.split(/[?#]/)[0].split('/').pop() ?? '';
  try {
    name = decodeURIComponent(name);
  } catch {
    /* not %-encoded after all */
  }
  name = name.replace(/[\\/:*?"<>|\x00-\x1f]/g, '_');
  return name && name !== '.' && name !== '..' ? name : 'mica.png';
}

// Img shows an image from mica's API. With an API key set, the picture is
// fetched with the key (an <img> cannot send one) and shown from a blob.
export function Img(props: { src: string; alt: string; class?: string; style?: Record<string, string>; loading?: 'lazy' }) {
  const key = apiKey();
  const [url, setUrl] = useState(key ? '' : props.src);
  useEffect(() => {
    if (!key) {
      setUrl(props.src);
      return;
    }
    let live = true;
    let made = '';
    send(props.src)
      .then((r) => r.blob())
      .then((b) => {
        if (!live) return;
        made = URL.createObjectURL(b);
        setUrl(made);
      })
      .catch(() => {});
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [props.src, key]);
  if (!url) return <span class={'img-wait ' + (props.class ?? '')} aria-label={props.alt} />;
  return <img src={url} alt={props.alt} class={props.class} style={props.style} loading={props.loading} draggable={false} />;
}

// imageFrom finds an image file in a drop or paste.
export function imageFrom(dt: DataTransfer | null): File | null {
  if (!dt) return null;
  for (const f of Array.from(dt.files)) if (f.type.startsWith('image/')) return f;
  for (const it of Array.from(dt.items ?? [])) {
    if (it.kind === 'file' && it.type.startsWith('image/')) return it.getAsFile();
  }
  return null;
}

// DropZone takes an image by drop, paste or file picker.
export function DropZone(props: { image: string; onImage: (dataURL: string) => void; onError: (e: unknown) => void; label: string }) {
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const take = (f: File | null) => {
    if (!f) {
      props.onError(new Error('That is not an image: drop a PNG, JPEG or WebP file.'));
      return;
    }
    readDataURL(f).then(props.onImage, props.onError);
  };
  return (
    <div
      class={over ? 'drop over' : 'drop'}
      tabIndex={0}
      role="button"
      aria-label={props.label}
      onDragOver={(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => { e.preventDefault(); setOver(false); take(imageFrom(e.dataTransfer)); }}
      onPaste={(e) => take(imageFrom(e.clipboardData))}
      onClick={() => input.current?.click()}
      onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') input.current?.click(); }}
    >
      {props.image ? <img src={props.image} alt="input image" class="drop-img" /> : <span>{props.label}</span>}
      <input ref={input} type="file" accept="image/*" hidden onChange={(e) => take(e.currentTarget.files?.[0] ?? null)} />
    </div>
  );
}

// MaskEditor paints an inpainting mask over an image: white is repainted.
// The mask canvas has the image's own size; onMask gets a PNG data URL.
export function MaskEditor(props: { image: string; onMask: (dataURL: string) => void }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [size, setSize] = useState(32);
  const [erase, setErase] = useState(false);
  const [dims, setDims] = useState<[number, number] | null>(null);
  const drawing = useRef(false);
  const lastPt = useRef<[number, number] | null>(null);

  useEffect(() => {
    const img = new Image();
    img.onload = () => setDims([img.naturalWidth, img.naturalHeight]);
    img.src = props.image;
  }, [props.image]);

  const pos = (e: PointerEvent): [number, number] => {
    const c = canvas.current!;
    const r = c.getBoundingClientRect();
    return [((e.clientX - r.left) * c.width) / r.width, ((e.clientY - r.top) * c.height) / r.height];
  };
  const stroke = (to: [number, number]) => {
    const c = canvas.current!;
    const g = c.getContext('2d')!;
    const scale = c.width / c.getBoundingClientRect().width;
    g.globalCompositeOperation = erase ? 'destination-out' : 'source-over';
    g.strokeStyle = g.fillStyle = '#fff';
    g.lineCap = g.lineJoin = 'round';
    g.lineWidth = size * scale;
    const from = lastPt.current ?? to;
    g.beginPath();
    g.moveTo(from[0], from[1]);
    g.lineTo(to[0], to[1]);
    g.stroke();
    lastPt.current = to;
  };
  const finish = () => {
    if (!drawing.current) return;
    drawing.current = false;
    lastPt.current = null;
    props.onMask(exportMask());
  };
  const exportMask = () => {
    const c = canvas.current!;
    const out = document.createElement('canvas');
    out.width = c.width;
    out.height = c.height;
    const g = out.getContext('2d')!;
    g.fillStyle = '#000';
    g.fillRect(0, 0, out.width, out.height);
    g.drawImage(c, 0, 0);
    return out.toDataURL('image/png');
  };
  const clear = () => {
    const c = canvas.current!;
    c.getContext('2d')!.clearRect(0, 0, c.width, c.height);
    props.onMask('');
  };

  return (
    <div class="mask-editor">
      <div class="mask-stage">
        <img src={props.image} alt="image to inpaint" draggable={false} />
        {dims && (
          <canvas
            ref={canvas}
            width={dims[0]}
            height={dims[1]}
            aria-label="Mask: paint over what to repaint"
            onPointerDown={(e) => {
              e.currentTarget.setPointerCapture(e.pointerId);
              drawing.current = true;
              stroke(pos(e));
            }}
            onPointerMove={(e) => drawing.current && stroke(pos(e))}
            onPointerUp={finish}
            onPointerCancel={finish}
          />
        )}
      </div>
      <div class="row">
        <label class="inline">Brush <input type="range" min={2} max={200} value={size} aria-label="Brush size" onInput={(e) => setSize(Number(e.currentTarget.value))} /> {size}px</label>
        <label class="switch"><input type="checkbox" checked={erase} onChange={(e) => setErase(e.currentTarget.checked)} /> Erase</label>
        <button type="button" onClick={clear}>Clear mask</button>
      </div>
    </div>
  );
}

// Viewer shows one image large, with wheel/pinch zoom and drag to pan.
export function Viewer(props: { src: string; onClose: () => void; children?: ComponentChildren }) {
  const [zoom, setZoom] = useState(1);
  const [pan, setPan] = useState<[number, number]>([0, 0]);
  const drag = useRef<[number, number] | null>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && props.onClose();
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
  return (
    <div class="viewer" role="dialog" aria-label="Image viewer">
      <div
        class="viewer-stage"
        onWheel={(e) => {
          e.preventDefault();
          setZoom((z) => Math.min(16, Math.max(0.25, z * (e.deltaY < 0 ? 1.2 : 1 / 1.2))));
        }}
        onPointerDown={(e) => {
          e.currentTarget.setPointerCapture(e.pointerId);
          drag.current = [e.clientX - pan[0], e.clientY - pan[1]];
        }}
        onPointerMove={(e) => drag.current && setPan([e.clientX - drag.current[0], e.clientY - drag.current[1]])}
        onPointerUp={() => (drag.current = null)}
        onDblClick={() => { setZoom(1); setPan([0, 0]); }}
      >
        <Img src={props.src} alt="the image, large" style={{ transform: `translate(${pan[0]}px, ${pan[1]}px) scale(${zoom})` }} />
      </div>
      <div class="viewer-side">
        <div class="row">
          <button type="button" onClick={() => setZoom((z) => Math.min(16, z * 1.5))} aria-label="Zoom in">+</button>
          <button type="button" onClick={() => setZoom((z) => Math.max(0.25, z / 1.5))} aria-label="Zoom out">−</button>
          <button type="button" onClick={() => { setZoom(1); setPan([0, 0]); }}>Fit</button>
          <span class="grow" />
          <button type="button" onClick={props.onClose} aria-label="Close viewer">Close</button>
        </div>
        {props.children}
      </div>
    </div>
  );
}
