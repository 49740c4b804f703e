// The audit page's "verify now" progress (templates/audit/verify.html): while the run is going, fetch this same
// page every 2 seconds and swap in its progress region (a live region), until the run has finished. Own code,
// no inline script (the pages' Content-Security-Policy allows only the hub's own scripts).
const REGION = 'verify-region'

async function refresh () {
  const region = document.getElementById(REGION)
  if (!region || region.dataset.running !== 'true') return
  try {
    const response = await fetch(window.location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' })
    if (response.ok) {
      const page = new DOMParser().parseFromString(await response.text(), 'text/html')
      const fresh = page.getElementById(REGION)
      if (fresh) {
        region.innerHTML = fresh.innerHTML
        region.dataset.running = fresh.dataset.running
      }
    }
  } catch (error) {
    // the next attempt tries again
  }
  if (region.dataset.running === 'true') window.setTimeout(refresh, 2000)
}

window.setTimeout(refresh, 2000)
