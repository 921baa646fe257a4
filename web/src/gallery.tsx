// The gallery: every image mica made (/mica/v1/history), newest first,
// with its parameters to recall, copy, send to img2img / inpainting, or
// have a model with vision describe as a prompt.
import { useEffect, useState } from 'preact/hooks';
import { getJSON, type HistoryEntry, type Scheduler } from './api';
import { Img, Viewer, downloadImage, urlToDataURL } from './images';
import { DescribeButton } from './prompttools';
import { applyInfotext, studioImage, studioMode, type Mode } from './studio';
import { fail, jobs, navigate, notify, useValue, watchJobs } from './store';

export function Gallery() {
  const [items, setItems] = useState<HistoryEntry[]>([]);
  const [next, setNext] = useState('');
  const [loaded, setLoaded] = useState(false);
  const [open, setOpen] = useState<HistoryEntry | null>(null);
  const [schedulers, setSchedulers] = useState<Scheduler[]>([]);
  const all = useValue(jobs);

  const page = async (cursor: string) => {
    try {
      const r = await getJSON<{ images: HistoryEntry[]; next?: string }>('/mica/v1/history?limit=60' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      setItems((old) => (cursor ? [...old, ...r.images] : r.images));
      setNext(r.next ?? '');
    } catch (e) {
      fail(e);
    } finally {
      setLoaded(true);
    }
  };
  useEffect(() => {
    watchJobs();
    getJSON<Scheduler[]>('/sdapi/v1/schedulers').then(setSchedulers).catch(() => {});
  }, []);
  // New images appear as jobs finish.
  const finished = [...all.values()].filter((j) => j.state === 'finished').length;
  useEffect(() => { page(''); }, [finished]);

  const use = (e: HistoryEntry) => {
    applyInfotext(e.infotext, schedulers);
    studioMode.set('txt2img');
    navigate('/ui/studio');
    notify('Settings recalled from the image.');
  };
  const send = async (e: HistoryEntry, mode: Mode) => {
    try {
      applyInfotext(e.infotext, schedulers);
      studioImage.set(await urlToDataURL(e.image));
      studioMode.set(mode);
      navigate('/ui/studio');
    } catch (err) {
      fail(err);
    }
  };

  return (
    <div class="gallery">
      {loaded && items.length === 0 && <div class="empty"><h2>No images yet</h2><p class="hint">What you generate in Images shows here.</p></div>}
      <div class="grid-images">
        {items.map((e) => (
          <button type="button" class="thumb" onClick={() => setOpen(e)} title={e.infotext.split('\n')[0]}>
            <Img src={e.image} alt={e.infotext.split('\n')[0] || 'generated image'} loading="lazy" />
          </button>
        ))}
      </div>
      {next && <button type="button" class="wide" onClick={() => page(next)}>Load more</button>}
      {open && (
        <Viewer src={open.image} onClose={() => setOpen(null)}>
          <pre class="infotext">{open.infotext || '(no parameters stored)'}</pre>
          <p class="hint">{new Date(open.created).toLocaleString()}</p>
          <div class="col">
            <button type="button" class="primary" onClick={() => use(open)}>Use these settings</button>
            <button type="button" onClick={() => send(open, 'img2img')}>Send to img2img</button>
            <button type="button" onClick={() => send(open, 'inpaint')}>Send to inpaint</button>
            <button type="button" onClick={() => { navigator.clipboard?.writeText(open.infotext); notify('Infotext copied.'); }}>Copy infotext</button>
            <button type="button" onClick={() => downloadImage(open.image).catch(fail)}>Download</button>
            <DescribeButton image={open.image} after={() => navigate('/ui/studio')} />
          </div>
        </Viewer>
      )}
    </div>
  );
}
