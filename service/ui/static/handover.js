// The staff pages' only script: the NHS.UK frontend's components (header menu, skip link …). No inline script.
import { initAll } from './nhsuk/nhsuk-frontend.min.js'

document.body.classList.add('js-enabled', 'nhsuk-frontend-supported')
initAll()

// On a narrow screen a table scrolls inside its own region, never the page (a responsive table stacks instead): each is wrapped in a region
// that keyboard users can focus and scroll, named by the table's caption.
for (const table of document.querySelectorAll('table.nhsuk-table')) {
  if (table.classList.contains('nhsuk-table--responsive') || table.parentElement.classList.contains('handover-table-scroll')) continue
  const region = document.createElement('div')
  region.className = 'handover-table-scroll'
  region.setAttribute('role', 'region')
  region.setAttribute('tabindex', '0')
  const caption = table.querySelector('caption')
  region.setAttribute('aria-label', (caption && caption.textContent.trim()) || 'Table')
  table.before(region)
  region.append(table)
}

// "Print this list" buttons (the SMDT meeting list).
for (const button of document.querySelectorAll('[data-print]')) {
  button.addEventListener('click', () => window.print())
}
